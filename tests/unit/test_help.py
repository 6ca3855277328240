"""Help that explains: every option names its OPSPLAY_* variable, --env reads the same in
every command, `opsplay run --help` lists the procedures, messages read as sentences, and the
recap never cuts host names when stdout is not a terminal."""

from __future__ import annotations

import click
import pytest

from opsplay.cli import COMMANDS, cli
from opsplay.errors import ExitCode

# options that are modes or click's own, not settings a scheduler would set
NO_VARIABLE = {"help", "version", "list_only"}


def all_commands() -> list[tuple[list[str], click.Command]]:
    found: list[tuple[list[str], click.Command]] = [([], cli)]
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        found.append(([name], command))
        if isinstance(command, click.Group):
            found += [([name, sub], c) for sub, c in command.commands.items()]
    return found


@pytest.mark.parametrize(
    ("path", "command"), all_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_every_option_shows_its_opsplay_variable(opsplay, path, command):
    result = opsplay(*path, "--help")
    assert result.code == 0, result
    help_text = " ".join(result.out.split())  # click wraps lines
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in NO_VARIABLE:
            continue
        assert isinstance(param.envvar, str) and param.envvar.startswith("OPSPLAY_"), param.name
        assert f"env var: {param.envvar}" in help_text, (path, param.name)


def test_env_reads_the_same_everywhere(opsplay):
    texts = {
        " ".join(path): param.help
        for path, command in all_commands()
        for param in command.params
        if isinstance(param, click.Option) and "--env" in param.opts
    }
    assert len(texts) >= 10, texts  # run, maintenance, status, backups, hosts, schedule...
    assert len(set(texts.values())) == 1, texts


def test_run_help_lists_every_procedure(opsplay):
    from opsplay.playbooks import available_procedures

    out = opsplay("run", "--help").out
    listed = out.split("Procedures:")[1]
    for book in available_procedures():
        assert f"\n  {book.name} " in listed, book.name
    assert "[destructive]" in listed


def test_guard_says_a_sentence(opsplay, inventories):
    result = opsplay("run", "restore", "--env", "prod")
    assert result.code == ExitCode.NOT_CONFIRMED
    assert result.err.startswith(
        "opsplay: refusing to run restore on prod without --yes (or OPSPLAY_YES=1): "
        "'prod' is a protected environment and 'restore' is destructive"
    ), result.err
    weekly = opsplay("maintenance", "weekly", "--env", "prod")
    assert "refusing to run maintenance weekly on prod without --yes" in weekly.err


def test_recap_keeps_whole_host_names_without_a_terminal(capsys):
    from opsplay.display import print_recap
    from opsplay.state import RunRecord

    long_name = "prod-db-primary-01.eu-west-3.compute.internal.example.com"
    record = RunRecord(id="r1", env="prod", what="run health", check=False, started=0.0)
    record.status, record.exit_code, record.duration = "successful", 0, 1.0
    row = {"ok": 3, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 1, "duration": 1.0}
    record.hosts = {long_name: {**row, "message": "x " * 80}}
    print_recap(record)  # pytest's captured stdout is not a terminal
    out = capsys.readouterr().out
    assert long_name in out and "…" not in out
    assert ("x " * 80).strip() in out  # a message stays one line
