"""Ansible's reason in one line: a run ansible-playbook refuses before or outside a task says
why (its own [ERROR], first line), with exit 2 for the caller's input (a --limit matching no
host, a tag no task has, a vault it cannot open) and 1 otherwise (a playbook syntax error, a
missing role). Real ansible-playbook runs: these fail before any host is contacted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opsplay import runner
from opsplay.errors import ExitCode
from opsplay.execute import _ansible_error

from .test_bad_input import assert_one_line

VAULT = str(Path(sys.executable).parent / "ansible-vault")


def test_limit_matching_no_host_names_the_groups(opsplay, inventories):
    result = opsplay("run", "health", "--env", "dev", "--limit", "nosuch*")
    assert_one_line(result, "--limit 'nosuch*' matches no host", "db_servers, web_servers")
    assert "WARNING" not in result.err


def test_limit_uses_ansible_patterns(opsplay, inventories):
    from opsplay.environment import load_environment

    env = load_environment(inventories, "prod")
    assert env.inventory is not None
    assert env.inventory.matching("web_servers:!*web02*") == [
        "prod-web01.example.internal",
        "prod-web03.example.internal",
    ]
    assert env.inventory.matching("db_servers:&*db03*") == ["prod-db03.example.internal"]
    env.check_limit("db_servers")  # matches: no error


def test_a_tag_no_task_has_is_refused(opsplay, inventories):
    assert_one_line(opsplay("run", "health", "--env", "dev", "--tags", "bogus"), "'bogus'")
    assert_one_line(
        opsplay("maintenance", "weekly", "--env", "dev", "--skip-tags", "always,nope"), "'nope'"
    )


def _vaulted_group_vars(inventories: Path, tmp_path: Path) -> Path:
    password = tmp_path / "vault-password"
    password.write_text("right\n")
    vault = inventories / "dev" / "group_vars" / "all" / "vault.yml"
    vault.parent.mkdir(parents=True, exist_ok=True)
    vault.write_text("dev_secret: s3cret\n")
    subprocess.run(
        [VAULT, "encrypt", "--vault-password-file", str(password), str(vault)], check=True
    )
    return password


def test_vault_without_password(opsplay, inventories, tmp_path):
    _vaulted_group_vars(inventories, tmp_path)
    result = opsplay("run", "health", "--env", "dev")
    assert_one_line(result, "ansible-playbook: ", "no vault secrets found")


def test_vault_with_a_wrong_password(opsplay, inventories, tmp_path):
    _vaulted_group_vars(inventories, tmp_path)
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong\n")
    result = opsplay("run", "health", "--env", "dev", "--vault-password-file", str(wrong))
    assert_one_line(result, "ansible-playbook: ", "Decryption failed")


def _run(tmp_path: Path, playbook_text: str) -> runner.RunResult:
    playbook = tmp_path / "play.yml"
    playbook.write_text(playbook_text)
    inventory = tmp_path / "hosts"
    inventory.write_text("target.invalid\n")
    (tmp_path / "run").mkdir()
    return runner.run_playbook(
        runner.RunRequest(
            playbook=playbook,
            inventory=[inventory],
            private_data_dir=tmp_path / "run",
            ident="reason",
        )
    )


@pytest.mark.parametrize(
    ("playbook", "reason"),
    [
        (
            "- hosts: all\n  roles: [no_such_role_anywhere]\n",
            "the role 'no_such_role_anywhere' was not found",
        ),
        (
            "- hosts: all\n  tasks:\n    - ansible.builtin.debug: {msg: a}\n"
            "      ansible.builtin.command: echo b\n",
            "conflicting action statements",
        ),
        (
            "- hosts: all\n  tasks:\n    - no.such.collection_module: {}\n",
            "couldn't resolve module/action 'no.such.collection_module'",
        ),
    ],
    ids=["missing role", "syntax error", "missing collection"],
)
def test_playbook_errors_are_errors_with_ansibles_reason(tmp_path, playbook, reason):
    result = _run(tmp_path, playbook)
    message, code = _ansible_error(result)
    assert code == ExitCode.ERROR
    assert message is not None and message.startswith("ansible-playbook: ")
    assert reason.lower() in message.lower(), message
    assert "\n" not in message and "\x1b" not in message


def test_a_run_that_reached_its_tasks_has_no_ansible_reason(tmp_path):
    result = _run(
        tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    )
    assert result.stats is not None  # the play ran (the host is unreachable: a host failure)
    assert _ansible_error(result) == (None, ExitCode.ERROR)
