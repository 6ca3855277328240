"""opsplay as a library (src/opsplay/api.py) without lab hosts: what it refuses before a run,
what importing it costs, and that a run whose hosts fail is a result with the CLI's document."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import opsplay
from opsplay.errors import ExitCode
from opsplay.lock import environment_lock
from opsplay.state import private_dir


@pytest.fixture
def opsplay_cli(capsys):
    """The CLI in-process (tests/conftest.py's runner is named like this module's import)."""
    from opsplay.cli import main

    def run(*args: str):
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capsys.readouterr()
        return type("Result", (), {"code": exited.value.code, "out": captured.out})

    return run


@pytest.fixture
def settings(inventories, tmp_path):
    return opsplay.Settings(inventory_dir=str(inventories), state_dir=str(tmp_path / "state"))


def test_import_opsplay_loads_no_ansible_no_click():
    probe = (
        "import sys, opsplay; print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'ansible', 'ansible_runner', 'click', 'rich', 'yaml', 'jinja2'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves_and_is_documented():
    for name in opsplay.__all__:
        value = getattr(opsplay, name)
        assert (value.__doc__ or "").strip(), name
    assert sorted(opsplay.__all__) == opsplay.__all__ or set(opsplay.__all__) <= set(dir(opsplay))
    with pytest.raises(AttributeError):
        opsplay.no_such_name  # noqa: B018


def test_settings_from_the_same_variables_as_the_cli(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSPLAY_INVENTORY_DIR", str(tmp_path))
    monkeypatch.setenv("OPSPLAY_HISTORY_KEEP", "7")
    monkeypatch.setenv("OPSPLAY_STRATEGY", "linear")
    settings = opsplay.Settings.from_env()
    assert (settings.inventory_dir, settings.history_keep, settings.strategy) == (
        str(tmp_path),
        7,
        "linear",
    )
    monkeypatch.setenv("OPSPLAY_HISTORY_KEEP", "many")
    with pytest.raises(opsplay.BadInput, match="OPSPLAY_HISTORY_KEEP=many"):
        opsplay.Settings.from_env()


def test_bad_input_is_an_exception_with_its_exit_code(settings):
    with pytest.raises(opsplay.BadInput) as raised:
        opsplay.run("tea", env="dev", settings=settings)
    assert raised.value.code == ExitCode.USAGE and "unknown procedure 'tea'" in str(raised.value)
    with pytest.raises(opsplay.BadInput, match="unknown environment 'qa'"):
        opsplay.run("health", env="qa", settings=settings)
    with pytest.raises(opsplay.BadInput, match="matches no host"):
        opsplay.run("health", env="dev", limit="nosuch", settings=settings)
    with pytest.raises(opsplay.BadInput, match="extra_vars must be a mapping"):
        opsplay.run("health", env="dev", extra_vars=["a"], settings=settings)  # type: ignore[arg-type]
    with pytest.raises(opsplay.BadInput, match="unknown schedule"):
        opsplay.maintenance("yearly", env="dev", settings=settings)


def test_prod_or_destructive_without_confirm_is_refused_never_prompted(settings, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)  # even on a terminal: no prompt
    with pytest.raises(opsplay.NotConfirmed) as raised:
        opsplay.run("restore", env="prod", settings=settings)
    assert raised.value.code == ExitCode.NOT_CONFIRMED
    assert "without confirm=True" in str(raised.value)
    with pytest.raises(opsplay.NotConfirmed):
        opsplay.maintenance("weekly", env="prod", settings=settings)
    assert opsplay.history(settings=settings) == []  # nothing ran, nothing recorded


def test_a_locked_environment_names_its_holder(settings, tmp_path):
    state = private_dir(tmp_path / "state")
    holder = environment_lock(state, "dev", "opsplay maintenance weekly --env dev")
    with holder, pytest.raises(opsplay.Locked) as raised:
        opsplay.run("health", env="dev", settings=settings)
    assert raised.value.code == ExitCode.LOCKED
    assert "opsplay maintenance weekly --env dev" in raised.value.holder
    assert isinstance(raised.value, opsplay.OpsplayError)


def test_hosts_failing_are_a_result_and_the_callers_process_is_left_as_it_was(
    settings, opsplay_cli, tmp_path
):
    """The dev inventory's hosts do not exist: the run reaches its first task and finds every
    host unreachable. That is a result (ok False), the same document as the CLI's --json, and
    the caller's environment, umask, working directory and signal handlers are unchanged."""
    events: list[opsplay.Event] = []
    environ, cwd = dict(os.environ), os.getcwd()
    umask = os.umask(0o022)
    os.umask(umask)
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))

    result = opsplay.run(
        "health", env="dev", limit="dev-web01*", on_event=events.append, settings=settings
    )

    assert dict(os.environ) == environ and os.getcwd() == cwd
    assert os.umask(umask) == umask
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert result.ok is False and result.exit_code == ExitCode.HOSTS_UNREACHABLE
    assert list(result.failed_hosts) == ["dev-web01.example.internal"]
    assert result.hosts["dev-web01.example.internal"].unreachable == 1
    assert {e.kind for e in events} >= {"play_started", "task_started", "task_result"}
    assert any(e.result == "unreachable" for e in events)
    document = result.to_json()
    assert document["id"] == result.id and document["exit_code"] == ExitCode.HOSTS_UNREACHABLE
    assert [r.id for r in opsplay.history("dev", settings=settings)] == [result.id]
    # the CLI's --json of the same run has the same keys
    cli = opsplay_cli("run", "health", "--env", "dev", "--limit", "dev-web01*", "--json")
    assert set(json.loads(cli.out)) == set(document)


def test_environments_hosts_and_procedures(settings):
    names = [env.name for env in opsplay.environments(settings=settings)]
    assert {"dev", "prod", "staging"} <= set(names)
    hosts = opsplay.hosts("staging", settings=settings)
    assert len(hosts) == 4
    assert opsplay.Host("staging-db02.example.internal", ("db_servers",)) in hosts
    procedures = {p.name: p for p in opsplay.procedures()}
    assert procedures["restore"].destructive and procedures["backup"].role == "pg_backup"


def test_the_api_reference_builds_with_every_public_name(tmp_path):
    """scripts/docs: pdoc renders the package's public API from its docstrings."""
    pdoc = str(Path(sys.executable).parent / "pdoc")
    subprocess.run([pdoc, "opsplay", "-o", str(tmp_path)], check=True, capture_output=True)
    page = (tmp_path / "opsplay.html").read_text()
    for name in opsplay.__all__:
        assert f'id="{name}"' in page, name
    assert "confirm=True" in page  # run's docstring, rendered
