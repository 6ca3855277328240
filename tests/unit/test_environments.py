from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsplay.environment import load_environment
from opsplay.errors import OpsplayError
from opsplay.inventory import inventory_sources, resolve


def ansible_inventory_groups(env_dir: Path) -> dict[str, set[str]]:
    """Every group with its hosts (children included), from `ansible-inventory --list` run on
    the same sources: what ansible-playbook would target."""
    from opsplay.inventory import inventory_sources

    cmd = [str(Path(sys.executable).parent / "ansible-inventory"), "--list"]
    for source in inventory_sources(env_dir):
        cmd += ["-i", str(source)]
    listed = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    def members(group: str) -> set[str]:
        body = listed.get(group, {})
        hosts = set(body.get("hosts", []))
        for child in body.get("children", []):
            hosts |= members(child)
        return hosts

    return {group: members(group) for group in listed if group != "_meta"}


def assert_same_as_ansible(env_dir: Path) -> dict[str, frozenset[str]]:
    groups = resolve(env_dir).groups
    expected = ansible_inventory_groups(env_dir)
    # ansible-inventory leaves out groups without hosts; so does the comparison
    assert {g: set(h) for g, h in groups.items() if h} == {g: h for g, h in expected.items() if h}
    return groups


def test_ini_with_ranges_and_children(tmp_path):
    (tmp_path / "hosts").write_text(
        "bastion\n"
        "[web_servers]\nweb[01:09:2].example.internal\n"
        "[db_servers]\ndb[a:c]\n"
        "[servers:children]\nweb_servers\ndb_servers\n"
    )
    groups = assert_same_as_ansible(tmp_path)
    assert groups["web_servers"] == {f"web0{n}.example.internal" for n in (1, 3, 5, 7, 9)}
    assert groups["db_servers"] == {"dba", "dbb", "dbc"}
    assert groups["servers"] == groups["web_servers"] | groups["db_servers"]
    assert groups["ungrouped"] == {"bastion"}


def test_yaml_under_any_name(tmp_path):
    (tmp_path / "inventory.yml").write_text(
        "all:\n"
        "  hosts:\n    bastion:\n"
        "  children:\n"
        "    db_servers:\n      hosts:\n        db[08:10]:\n"
        "    web_servers:\n      hosts:\n        web1: {ansible_host: 10.0.0.1}\n"
        "      children:\n        canary:\n          hosts:\n            web-canary:\n"
    )
    groups = assert_same_as_ansible(tmp_path)
    assert groups["db_servers"] == {"db08", "db09", "db10"}
    assert groups["web_servers"] == {"web1", "web-canary"}
    assert groups["canary"] == {"web-canary"}


def test_constructed_group_from_a_host_variable(tmp_path):
    (tmp_path / "01-hosts.yml").write_text(
        "all:\n  hosts:\n    a1: {site: paris}\n    a2: {site: berlin}\n    a3: {site: paris}\n"
    )
    (tmp_path / "02-constructed.yml").write_text(
        "plugin: ansible.builtin.constructed\nstrict: true\n"
        "keyed_groups:\n  - key: site\n    prefix: site\n"
    )
    groups = assert_same_as_ansible(tmp_path)
    assert groups["site_paris"] == {"a1", "a3"}
    assert groups["site_berlin"] == {"a2"}


def test_directory_mixing_two_sources_and_opsplay_files(tmp_path):
    (tmp_path / "hosts").write_text("[web_servers]\nweb1\nweb2\n")
    (tmp_path / "databases.yml").write_text("db_servers:\n  hosts:\n    db1:\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("ansible_user: ops\n")
    (tmp_path / "schedule.yml").write_text("weekly: Mon 02:00\n")  # opsplay's, not inventory
    (tmp_path / "README.md.orig").write_text("ignored by Ansible's rules\n")
    assert [p.name for p in inventory_sources(tmp_path)] == ["databases.yml", "hosts"]
    groups = assert_same_as_ansible(tmp_path)
    assert groups["all"] == {"web1", "web2", "db1"}
    assert "weekly" not in groups


def test_a_source_that_cannot_be_parsed_is_named(tmp_path):
    (tmp_path / "hosts").write_text("[web_servers]\nweb1\n")
    (tmp_path / "broken.yml").write_text("all:\n  hosts: [unclosed\n")
    with pytest.raises(OpsplayError, match=r"malformed inventory .*broken\.yml: YAML"):
        resolve(tmp_path)


def test_envs_lists_counts(opsplay, inventories):
    result = opsplay("envs", "--json")
    assert result.code == 0
    rows = {row["env"]: row for row in json.loads(result.out)}
    assert rows["prod"]["hosts"] == 6
    assert rows["prod"]["groups"] == {"db_servers": 3, "web_servers": 3}
    assert rows["prod"]["protected"] is True
    assert rows["dev"]["protected"] is False


def test_hosts_resolves_groups(opsplay, inventories):
    result = opsplay("hosts", "--env", "staging", "--json")
    assert result.code == 0
    hosts = json.loads(result.out)["hosts"]
    assert hosts["staging-db02.example.internal"] == ["db_servers"]
    assert len(hosts) == 4


def test_env_from_environment_variable(opsplay, inventories, monkeypatch):
    monkeypatch.setenv("OPSPLAY_ENV", "dev")
    result = opsplay("hosts")
    assert result.code == 0
    assert "dev-db01.example.internal" in result.out


def test_inventory_dir_elsewhere(opsplay, tmp_path):
    other = tmp_path / "team-inventories" / "qa"
    other.mkdir(parents=True)
    (other / "hosts.yml").write_text("all:\n  hosts:\n    qa1:\n")
    result = opsplay("--inventory-dir", str(other.parent), "hosts", "--env", "qa")
    assert result.code == 0
    assert result.out.strip().startswith("qa1")
    assert load_environment(other.parent, "qa").hosts == ["qa1"]
