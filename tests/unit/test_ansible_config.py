"""The team's Ansible configuration wins key by key; opsplay's tuning is the default
(src/opsplay/ansible_config.py). Checked with ansible-config itself: what a run would read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsplay import ansible_config
from opsplay.content import ansible_cfg
from opsplay.errors import OpsplayError

ANSIBLE_CONFIG_CLI = str(Path(sys.executable).parent / "ansible-config")
OWN_PATHS = {
    "ANSIBLE_ROLES_PATH": ["/opsplay/roles"],
    "ANSIBLE_CALLBACK_PLUGINS": ["/opsplay/callback_plugins"],
    "ANSIBLE_CALLBACKS_ENABLED": ["opsplay_prefork"],
}


def team_file(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ansible.cfg"
    path.write_text(
        "[defaults]\nforks = 5\nroles_path = team-roles\n"
        "callbacks_enabled = ansible.posix.profile_tasks\n"
        "[ssh_connection]\nssh_args = -o ProxyJump=bastion.example\n"
    )
    return path


def resolve(tmp_path, environ=None, inventory_dir=None):
    return ansible_config.resolve(
        ansible_cfg(), OWN_PATHS, inventory_dir=inventory_dir, environ=environ or {}
    )


def ansible_sees(env: dict[str, str], cwd: Path) -> str:
    """`ansible-config dump --only-changed` in the environment of a run: Ansible's own view."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return subprocess.run(
        [ANSIBLE_CONFIG_CLI, "dump", "--only-changed", "-t", "all"],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_without_a_team_file_the_run_reads_opsplays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = resolve(tmp_path)
    assert config.team_file is None and config.env["ANSIBLE_CONFIG"] == str(ansible_cfg())
    assert "ANSIBLE_FORKS" not in config.env  # read from opsplay's own file


def test_opsplays_checkout_is_not_a_team(tmp_path, monkeypatch):
    monkeypatch.chdir(ansible_cfg().parent)  # its ./ansible.cfg is opsplay's own
    assert resolve(None).team_file is None
    beside = team_file(tmp_path / "inventories")  # ...so the inventories' one is the team's
    assert resolve(None, inventory_dir=tmp_path / "inventories").team_file == beside


def test_team_file_wins_key_by_key(tmp_path, monkeypatch):
    team = team_file(tmp_path / "work")
    monkeypatch.chdir(team.parent)
    config = resolve(tmp_path, environ={"ANSIBLE_TIMEOUT": "99"})
    env = config.env
    assert config.team_file == team and env["ANSIBLE_CONFIG"] == str(team)
    assert "ANSIBLE_FORKS" not in env  # the team's 5 stays (its file is the run's)
    assert "ANSIBLE_SSH_ARGS" not in env  # its bastion stays
    assert "ANSIBLE_TIMEOUT" not in env  # the caller's variable stays
    assert env["ANSIBLE_GATHERING"] == "explicit"  # opsplay's tuning where the team is silent
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "opsplay_prefork,ansible.posix.profile_tasks"
    assert env["ANSIBLE_ROLES_PATH"] == os.pathsep.join(
        ["/opsplay/roles", str(team.parent / "team-roles")]  # relative to the team's file
    )
    sources = {s.name: s.source for s in config.settings}
    assert sources["ANSIBLE_FORKS"] == f"team ansible.cfg ({team})"
    assert sources["ANSIBLE_TIMEOUT"] == "environment"
    assert sources["ANSIBLE_GATHERING"].startswith("opsplay (")
    # and Ansible reads exactly that
    seen = ansible_sees({**env, "ANSIBLE_TIMEOUT": "99"}, tmp_path)
    assert f"DEFAULT_FORKS({team}) = 5" in seen
    assert "DEFAULT_TIMEOUT(env: ANSIBLE_TIMEOUT) = 99" in seen
    assert "DEFAULT_GATHERING(env: ANSIBLE_GATHERING) = explicit" in seen
    assert "['opsplay_prefork', 'ansible.posix.profile_tasks']" in seen
    assert "ProxyJump=bastion.example" in seen


def test_where_the_team_file_is_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inventories = tmp_path / "inventories"
    beside = team_file(inventories)
    assert resolve(tmp_path, inventory_dir=inventories).team_file == beside
    in_cwd = team_file(tmp_path)
    assert resolve(tmp_path, inventory_dir=inventories).team_file == in_cwd
    explicit = team_file(tmp_path / "elsewhere")
    environ = {"ANSIBLE_CONFIG": str(explicit)}
    assert resolve(tmp_path, environ=environ, inventory_dir=inventories).team_file == explicit
    with pytest.raises(OpsplayError, match=r"ANSIBLE_CONFIG=/nowhere\.cfg is not a file"):
        resolve(tmp_path, environ={"ANSIBLE_CONFIG": "/nowhere.cfg"})


def test_every_variable_is_one_ansible_reads(tmp_path):
    """Each opsplay setting's variable name is the one ansible-core 2.19 reads for that key."""
    values = {
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_FORKS": "7",
        "ANSIBLE_RETRY_FILES_ENABLED": "True",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_NOCOWS": "True",
        "ANSIBLE_TIMEOUT": "17",
        "ANSIBLE_STRATEGY": "free",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": "-o Test=1",
        "ANSIBLE_ROLES_PATH": "/x",
        "ANSIBLE_CALLBACK_PLUGINS": "/y",
        "ANSIBLE_CALLBACKS_ENABLED": "timer",
        "ANSIBLE_COLLECTIONS_PATH": "/z",
        "ANSIBLE_STRATEGY_PLUGINS": "/w",
    }
    names = set(ansible_config.ENV_NAMES.values()) | set(ansible_config.JOINED.values())
    assert names == set(values)
    empty = tmp_path / "empty.cfg"
    empty.write_text("")
    seen = ansible_sees({"ANSIBLE_CONFIG": str(empty), **values}, tmp_path)
    for name in values:
        assert f"(env: {name})" in seen, name
