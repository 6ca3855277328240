"""opsplay schedule show|install|remove --env ENV: the maintenance calendar on the control node."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from opsplay.schedules import Job
    from opsplay.settings import Settings

_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["cron", "systemd"]),
    default="cron",
    show_default=True,
    envvar="OPSPLAY_SCHEDULE_FORMAT",
    help="Cron entries in /etc/cron.d or systemd service + timer units.",
)
_ENV = click.option(
    "--env", "env_name", envvar="OPSPLAY_ENV", metavar="ENV", required=True, help="Environment."
)
_ROOT = click.option(
    "--root",
    type=click.Path(file_okay=False),
    default="/",
    show_default=True,
    help="Install below this directory instead of /.",
)
_LOG_DIR = click.option(
    "--log-dir",
    type=click.Path(file_okay=False),
    default="/var/log/opsplay",
    show_default=True,
    envvar="OPSPLAY_LOG_DIR",
    help="Where the scheduled runs log.",
)


@click.group("schedule")
def command() -> None:
    """Run the maintenance schedules from cron or systemd timers (times: ENV/schedule.yml)."""


@command.command("show")
@_ENV
@_FORMAT
@_LOG_DIR
@click.pass_obj
def show(settings: Settings, env_name: str, fmt: str, log_dir: str) -> int:
    """Print exactly what install would write."""
    from opsplay.schedules import render

    for path, content in render(_jobs(settings, env_name, log_dir), fmt).items():
        click.echo(f"# --- /{path}")
        click.echo(content, nl=False)
    return 0


@command.command("install")
@_ENV
@_FORMAT
@_ROOT
@_LOG_DIR
@click.pass_obj
def install(settings: Settings, env_name: str, fmt: str, root: str, log_dir: str) -> int:
    """Write the cron file or units (only what differs) and enable the timers."""
    from pathlib import Path

    from opsplay.schedules import install as apply
    from opsplay.schedules import render

    files = render(_jobs(settings, env_name, log_dir), fmt)
    root_path = Path(root)
    (root_path / log_dir.lstrip("/")).mkdir(parents=True, exist_ok=True)
    written, removed = apply(env_name, files, root_path)
    for path in written:
        click.echo(f"wrote {path}")
    for path in removed:
        click.echo(f"removed {path}")
    if not written and not removed:
        click.echo(f"schedule for {env_name} already installed ({fmt})")
    return 0


@command.command("remove")
@_ENV
@_ROOT
def remove(env_name: str, root: str) -> int:
    """Remove the cron file and units opsplay installed for ENV."""
    from pathlib import Path

    from opsplay.schedules import install as apply

    _, removed = apply(env_name, {}, Path(root))
    for path in removed:
        click.echo(f"removed {path}")
    if not removed:
        click.echo(f"no schedule installed for {env_name}")
    return 0


def _jobs(settings: Settings, env_name: str, log_dir: str) -> list[Job]:
    import shutil
    import sys
    from pathlib import Path

    from opsplay.environments import load_environment
    from opsplay.errors import OpsplayError
    from opsplay.schedules import Job, load_times

    env = load_environment(settings.inventories(), env_name)
    beside = Path(sys.executable).parent / "opsplay"
    opsplay = str(beside) if beside.is_file() else shutil.which("opsplay")
    if not opsplay:
        raise OpsplayError("cannot find the opsplay executable to schedule")
    return [
        Job(
            env=env.name,
            schedule=name,
            when=when,
            opsplay=str(Path(opsplay).absolute()),
            inventory_dir=settings.inventories().absolute(),
            state_dir=settings.state().absolute(),
            log_dir=Path(log_dir),
        )
        for name, when in load_times(env.path).items()
        if when is not None
    ]
