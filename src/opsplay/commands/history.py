"""opsplay history [--env ENV] [--json] / history show ID: past runs and their output."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from opsplay.settings import Settings

from opsplay.errors import OpsplayError
from opsplay.options import JSON_OPTION, env_option


@click.group("history", invoke_without_command=True)
@env_option()
@JSON_OPTION
@click.pass_context
def command(ctx: click.Context, env_name: str | None, as_json: bool) -> int:
    """List past runs: id, env, what ran, start, duration, status, changed/failed."""
    if ctx.invoked_subcommand is not None:
        return 0
    from opsplay.state import History

    settings: Settings = ctx.obj
    records = History(settings.state()).records(env_name)
    if as_json:
        import json

        click.echo(json.dumps([r.to_json() for r in records], indent=2, sort_keys=True))
        return 0
    for r in records:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started))
        t = r.totals
        mode = " (check)" if r.check else ""
        click.echo(
            f"{r.id}  {r.env:<8} {r.what + mode:<28} {started}  {r.duration or 0:>7.1f}s  "
            f"{r.status:<10} changed={t['changed']} failed={t['failed'] + t['unreachable']}"
        )
    return 0


@command.command("show")
@click.argument("run_id")
@click.pass_obj
def show(settings: Settings, run_id: str) -> int:
    """Print one run's Ansible output."""
    from pathlib import Path

    from opsplay.state import History

    record = History(settings.state()).get(run_id)
    stdout = Path(record.artifacts) / "stdout" if record.artifacts else None
    if stdout is None or not stdout.is_file():
        raise OpsplayError(f"run {record.id} has no output (status {record.status})")
    click.echo(stdout.read_text(encoding="utf-8", errors="replace"), nl=False)
    return 0
