"""The inventory cache (opsplay.inventory_cache): a static INI/YAML inventory is resolved by
ansible-core once and served from the state directory while nothing that decides it changes;
anything else is resolved by ansible-core on every run, and a bad inventory still gives its line."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from opsplay import inventory, inventory_cache
from opsplay.errors import OpsplayError


@pytest.fixture
def env_dir(tmp_path: Path) -> Path:
    env = tmp_path / "inventories" / "qa"
    env.mkdir(parents=True)
    (env / "hosts.yml").write_text(
        "all:\n  children:\n    db_servers:\n      hosts:\n        db1:\n        db2:\n"
        "    web_servers:\n      hosts:\n        web1:\n"
    )
    (env / "group_vars").mkdir()
    (env / "group_vars" / "all.yml").write_text("ansible_user: ops\n")
    return env


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "state" / "cache"


def no_ansible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if ansible-core is asked to resolve the inventory."""

    def refuse(env_dir: Path) -> None:
        raise AssertionError(f"{env_dir} resolved by ansible-core, not the cache")

    monkeypatch.setattr(inventory, "_resolve", refuse)


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "inventory").glob("*.json")) if (cache / "inventory").is_dir() else []


def test_a_static_inventory_is_served_from_the_cache(env_dir, cache, monkeypatch):
    first = inventory.resolve(env_dir, cache)
    assert first.groups["db_servers"] == {"db1", "db2"}
    [entry] = entries(cache)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.parent.stat().st_mode) == 0o700
    no_ansible(monkeypatch)
    again = inventory.resolve(env_dir, cache)
    assert again.groups == first.groups
    assert again.sources == first.sources == (env_dir / "hosts.yml",)


def test_a_changed_file_is_resolved_again(env_dir, cache):
    inventory.resolve(env_dir, cache)
    hosts = env_dir / "hosts.yml"
    # the same size, another content: the mtime tells
    hosts.write_text(hosts.read_text().replace("db2", "db3"))
    os.utime(hosts, ns=(hosts.stat().st_atime_ns, hosts.stat().st_mtime_ns + 1000))
    assert inventory.resolve(env_dir, cache).groups["db_servers"] == {"db1", "db3"}


def test_a_new_source_is_resolved_again(env_dir, cache):
    inventory.resolve(env_dir, cache)
    (env_dir / "more.orig").write_text("[web_servers]\nweb9\n")  # ignored by Ansible
    (env_dir / "more").write_text("[web_servers]\nweb2\n")
    resolved = inventory.resolve(env_dir, cache)
    assert resolved.groups["web_servers"] == {"web1", "web2"}
    assert [s.name for s in resolved.sources] == ["hosts.yml", "more"]


def test_a_bad_inventory_still_fails_in_one_line_after_a_good_one(env_dir, cache):
    inventory.resolve(env_dir, cache)
    (env_dir / "broken.yml").write_text("all:\n  hosts: [unclosed\n")
    with pytest.raises(OpsplayError, match=r"malformed inventory .*broken\.yml: YAML"):
        inventory.resolve(env_dir, cache)


def test_ansible_settings_are_part_of_the_fingerprint(env_dir, cache, monkeypatch):
    key = inventory_cache.fingerprint(env_dir)
    monkeypatch.setenv("ANSIBLE_INVENTORY_IGNORE", ".yml")
    assert inventory_cache.fingerprint(env_dir) != key
    monkeypatch.delenv("ANSIBLE_INVENTORY_IGNORE")
    config = env_dir.parent / "ansible.cfg"
    config.write_text("[inventory]\nignore_extensions = .yml\n")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(config))
    assert inventory_cache.fingerprint(env_dir) != key


def test_group_and_host_vars_do_not_change_the_fingerprint(env_dir):
    key = inventory_cache.fingerprint(env_dir)
    (env_dir / "group_vars" / "db_servers.yml").write_text("x: 1\n")
    (env_dir / "host_vars").mkdir()
    assert inventory_cache.fingerprint(env_dir) == key


def test_a_plugin_configuration_is_never_cached(env_dir, cache):
    (env_dir / "zz-constructed.yml").write_text(
        "plugin: ansible.builtin.constructed\nstrict: true\n"
        "groups:\n  first_db: inventory_hostname == 'db1'\n"
    )
    assert inventory.resolve(env_dir, cache).groups["first_db"] == {"db1"}
    assert entries(cache) == []


def test_a_script_is_never_cached(env_dir, cache):
    script = env_dir / "dynamic.py"
    script.write_text(
        f"#!{sys.executable}\nimport json\n"
        "print(json.dumps({'cloud': {'hosts': ['vm1']}, '_meta': {'hostvars': {}}}))\n"
    )
    script.chmod(0o700)
    assert inventory.resolve(env_dir, cache).groups["cloud"] == {"vm1"}
    assert entries(cache) == []


def test_a_damaged_entry_is_resolved_again(env_dir, cache):
    inventory.resolve(env_dir, cache)
    [entry] = entries(cache)
    entry.write_text("{not json")
    assert inventory.resolve(env_dir, cache).groups["web_servers"] == {"web1"}
    assert json.loads(entry.read_text())["groups"]["web_servers"] == ["web1"]


def test_limit_from_the_cache(env_dir, cache, monkeypatch):
    inventory.resolve(env_dir, cache)
    cached = inventory.resolve(env_dir, cache)
    assert cached._manager is None
    monkeypatch.setattr(inventory, "_quiet_manager", None)  # names: no ansible-core at all
    assert cached.matching("db1") == ["db1"]
    assert cached.matching("web_servers,db2") == ["db2", "web1"]
    monkeypatch.undo()
    # a pattern, or names matching nothing: ansible-core's own matching
    assert cached.matching("db*") == ["db1", "db2"]
    assert cached.matching("all:!db_servers") == ["web1"]
    assert cached.matching("nohost") == []


def test_a_run_start_from_the_cache_imports_no_ansible(env_dir, cache):
    """The point of the cache: the CLI's process resolves a cached environment without
    ansible-core (start-up time and memory, issues 19 and 20)."""
    root, state = str(env_dir.parent), str(cache)
    code = (
        "import sys; from pathlib import Path; from opsplay.environment import load_environment\n"
        f"env = load_environment(Path({root!r}), 'qa', cache_dir=Path({state!r}))\n"
        "env.check_limit('db1')\n"
        "print(env.hosts, 'ansible' in sys.modules)\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert runs[0].stdout.split() == ["['db1',", "'db2',", "'web1']", "True"]
    assert runs[1].stdout.split() == ["['db1',", "'db2',", "'web1']", "False"]
