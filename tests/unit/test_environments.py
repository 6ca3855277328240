from __future__ import annotations

import json

from opsplay.environments import load_environment, parse_inventory


def test_groups_children_and_ranges(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n"
        "  hosts:\n    bastion:\n"
        "  children:\n"
        "    db_servers:\n      hosts:\n        db[08:10]:\n"
        "    web_servers:\n      hosts:\n        web1: {ansible_host: 10.0.0.1}\n"
        "      children:\n        canary:\n          hosts:\n            web-canary:\n"
    )
    groups = parse_inventory(path)
    assert groups["db_servers"] == {"db08", "db09", "db10"}
    assert groups["web_servers"] == {"web1", "web-canary"}
    assert groups["canary"] == {"web-canary"}
    assert groups["all"] == {"bastion", "db08", "db09", "db10", "web1", "web-canary"}


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
