"""Prod guard: protected envs and destructive procedures need a terminal 'yes' or --yes."""

from __future__ import annotations

import pytest

from opsplay.environment import Environment
from opsplay.errors import ExitCode, OpsplayError
from opsplay.guard import confirm_run
from opsplay.playbooks import Playbook

SAFE = Playbook("health", "health", "")
DESTRUCTIVE = Playbook("restore", "pg_backup", "", destructive=True)


def env(name):
    return Environment(name=name, path=None, host_groups={"h1": {"all"}})


def test_prod_without_terminal_is_refused(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(OpsplayError) as refused:
        confirm_run(env("prod"), SAFE, "run health", check=False, yes=False)
    assert refused.value.code == ExitCode.NOT_CONFIRMED
    assert "--yes" in refused.value.message


def test_destructive_anywhere_is_refused(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(OpsplayError):
        confirm_run(env("dev"), DESTRUCTIVE, "run restore", check=False, yes=False)


@pytest.mark.parametrize("check,yes", [(True, False), (False, True)])
def test_check_or_yes_pass(monkeypatch, check, yes):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    confirm_run(env("prod"), DESTRUCTIVE, "run restore", check=check, yes=yes)


def test_dev_safe_procedure_needs_nothing(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    confirm_run(env("dev"), SAFE, "run health", check=False, yes=False)


@pytest.mark.parametrize("answer,allowed", [("y\n", True), ("n\n", False), ("\n", False)])
def test_terminal_prompt(monkeypatch, answer, allowed):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    if allowed:
        confirm_run(env("prod"), SAFE, "run health", check=False, yes=False)
    else:
        with pytest.raises(OpsplayError) as refused:
            confirm_run(env("prod"), SAFE, "run health", check=False, yes=False)
        assert refused.value.code == ExitCode.NOT_CONFIRMED


def test_protected_envs_are_configurable(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    monkeypatch.setenv("OPSPLAY_PROTECTED_ENVS", "staging")
    confirm_run(env("prod"), SAFE, "run health", check=False, yes=False)
    with pytest.raises(OpsplayError):
        confirm_run(env("staging"), SAFE, "run health", check=False, yes=False)


def test_cli_prod_refused_without_yes(opsplay, inventories):
    result = opsplay("run", "health", "--env", "prod")
    assert result.code == ExitCode.NOT_CONFIRMED
    assert "protected environment" in result.err
