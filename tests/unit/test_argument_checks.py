"""A playbook applying several roles checks every role's variables in a first play of its own
(playbooks/tasks/check-arguments.yml) before any task changes a host: the list there must hold
every role and entry point the playbook uses, and the check leaves `required` to the role. A role
include may turn its own check off (`rolespec_validate: false`) only where that first play
checked it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
CHECK_PLAY = "Check the variables of every role this playbook uses"
# the run gates' plays (playbooks/tasks/gates.yml, release.yml) apply no role
GATE_PLAYS = ("Take the run gates", "Release this run's leases")
# a playbook that schedules import (security-updates.yml) skips its own check play when imported
UNLESS_IMPORTED = "{{ '!all' if opsplay_imported | default(false) else 'all' }}"


def plays(path: Path) -> list[dict[str, Any]]:
    """The plays of a playbook, imported playbooks expanded in place."""
    out: list[dict[str, Any]] = []
    for play in yaml.safe_load(path.read_text()):
        imported = play.get("ansible.builtin.import_playbook")
        out.extend(plays(path.parent / imported) if imported else [play])
    return out


def role_includes(play: dict[str, Any]) -> list[dict[str, Any]]:
    """The arguments of every include_role/import_role task of a play, blocks included."""
    found = []
    tasks = list(play.get("tasks") or [])
    while tasks:
        task = tasks.pop()
        for key in ("block", "rescue", "always"):
            tasks.extend(task.get(key) or [])
        for action in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
            if action in task:
                found.append(task[action])
    return found


def roles_used(play: dict[str, Any]) -> set[tuple[str, str]]:
    used = set()
    for entry in play.get("roles") or []:
        used.add((entry["role"] if isinstance(entry, dict) else entry, "main"))
    for args in role_includes(play):
        used.add((args["name"], str(args.get("tasks_from", "main"))))
    return used


def checked(play: dict[str, Any]) -> set[tuple[str, str]]:
    (task,) = play["tasks"]
    assert task["ansible.builtin.import_tasks"] == "tasks/check-arguments.yml"
    return {(p["role"], p["entry_point"]) for p in task["vars"]["check_arguments_roles"]}


SEVERAL_ROLES = [
    path.name
    for path in sorted(PLAYBOOKS.glob("*.yml"))
    if len({role for play in plays(path) for role, _ in roles_used(play)}) > 1
]


def test_the_schedules_apply_several_roles():
    assert {
        "maintenance-daily.yml",
        "maintenance-weekly.yml",
        "maintenance-monthly.yml",
        "maintenance-quarterly.yml",
        "security-updates.yml",
        "reindex.yml",
    } <= set(SEVERAL_ROLES)


@pytest.mark.parametrize("name", SEVERAL_ROLES)
def test_a_playbook_of_several_roles_checks_them_all_first(name):
    first, *rest = plays(PLAYBOOKS / name)
    rest = [play for play in rest if play.get("name") not in GATE_PLAYS]
    assert first["name"] == CHECK_PLAY, f"{name}: its first play must check the roles' variables"
    # on the hosts the playbook runs on, and one host's wrong value stops the run on all of them
    patterns = {play["hosts"] for play in rest}
    hosts = "all" if first["hosts"] == UNLESS_IMPORTED else first["hosts"]
    assert hosts == ("all" if "all" in patterns else ":".join(sorted(patterns)))
    assert first["any_errors_fatal"] is True
    used = set().union(*(roles_used(play) for play in rest))
    assert checked(first) == used, f"{name}: check-arguments list != roles used"


@pytest.mark.parametrize("path", sorted(PLAYBOOKS.glob("*.yml")), ids=lambda p: p.name)
def test_a_role_skips_its_own_check_only_where_the_first_play_checked_it(path):
    own = [play for play in yaml.safe_load(path.read_text()) if "hosts" in play]
    unchecked = {
        (args["name"], str(args.get("tasks_from", "main")))
        for play in own
        for args in role_includes(play)
        if args.get("rolespec_validate") is False
    }
    if unchecked:
        assert own[0]["name"] == CHECK_PLAY, path.name
        assert unchecked <= checked(own[0]), path.name


def test_the_schedules_check_each_role_once_per_host():
    # the weekly's imported security-updates.yml skips its own check play (and its gates)
    weekly = plays(PLAYBOOKS / "maintenance-weekly.yml")
    checks = [play for play in weekly if play.get("name") == CHECK_PLAY]
    assert checks[0]["hosts"] == "all"
    assert [play["hosts"] for play in checks[1:]] == [UNLESS_IMPORTED]
    for name in ("maintenance-weekly.yml", "maintenance-monthly.yml", "security-updates.yml"):
        for play in plays(PLAYBOOKS / name):
            for args in role_includes(play):
                assert args.get("rolespec_validate") is False, (name, args["name"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A playbook elsewhere (as Molecule's converge.yml: no roles/ beside it) that only imports
    the shared task file; the roles are found through roles_path (ansible.cfg)."""
    (tmp_path / "playbooks").mkdir()
    play = {
        "name": "Check",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.import_tasks": str(PLAYBOOKS / "tasks" / "check-arguments.yml")}
        ],
    }
    (tmp_path / "playbooks" / "check.yml").write_text(yaml.safe_dump([play]))
    return tmp_path


def run_check(
    project: Path, roles: list[dict[str, str]], *extra: str
) -> subprocess.CompletedProcess:
    """The shared task file run by Ansible for a host that does not exist: the check runs on the
    controller and contacts no host."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        *("-i", "nowhere.invalid,", str(project / "playbooks" / "check.yml")),
        *("-e", json.dumps({"check_arguments_roles": roles}), *extra),
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_required_is_left_to_the_role_and_wrong_values_fail(project):
    # maintenance_mode's main entry point requires maintenance_mode_state, which
    # playbooks/maintenance-mode.yml passes as the include's vars: not in scope for the check.
    roles = [
        {"role": "maintenance_mode", "entry_point": "main"},
        {"role": "pg_backup", "entry_point": "main"},
    ]
    proc = run_check(project, roles)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "unreachable=0" in proc.stdout and "failed=0" in proc.stdout

    wrong = ("-e", "maintenance_mode_state=bogus", "-e", "pg_backup_keep_daily=abc")
    proc = run_check(project, roles, *wrong)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "value of maintenance_mode_state must be one of: on, off, got: bogus" in proc.stdout
    assert "argument 'pg_backup_keep_daily' is of type str" in proc.stdout
