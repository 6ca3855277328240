"""opsplay schedule show|install|remove --env ENV: the maintenance calendar on the control node."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opsplay.options import env_option

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
_ENV = env_option(required=True)
_ROOT = click.option(
    "--root",
    type=click.Path(file_okay=False),
    default="/",
    show_default=True,
    envvar="OPSPLAY_SCHEDULE_ROOT",
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


_STATUS_EVERY = click.option(
    "--status-every",
    type=click.IntRange(0, 59),
    default=15,
    show_default=True,
    envvar="OPSPLAY_STATUS_EVERY",
    metavar="MINUTES",
    help="Also refresh `opsplay status` (its Prometheus textfile) every MINUTES; 0: no refresh.",
)


@click.group("schedule")
def command() -> None:
    """Run the maintenance schedules from cron or systemd timers (times: ENV/schedule.yml)."""


@command.command("show")
@_ENV
@_FORMAT
@_LOG_DIR
@_STATUS_EVERY
@click.pass_obj
def show(settings: Settings, env_name: str, fmt: str, log_dir: str, status_every: int) -> int:
    """Print the calendar's next windows and freezes, then exactly what install would write."""
    from opsplay.schedules import render

    for line in _calendar_lines(settings, env_name):
        click.echo(line)
    for path, content in render(_jobs(settings, env_name, log_dir, status_every), fmt).items():
        click.echo(f"# --- /{path}")
        click.echo(content, nl=False)
    return 0


@command.command("install")
@_ENV
@_FORMAT
@_ROOT
@_LOG_DIR
@_STATUS_EVERY
@click.pass_obj
def install(
    settings: Settings, env_name: str, fmt: str, root: str, log_dir: str, status_every: int
) -> int:
    """Write the cron file or units (only what differs) and enable the timers."""
    from pathlib import Path

    from opsplay.errors import OpsplayError
    from opsplay.schedules import install as apply
    from opsplay.schedules import render

    files = render(_jobs(settings, env_name, log_dir, status_every), fmt)
    root_path = Path(root)
    try:
        (root_path / log_dir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        written, removed = apply(env_name, files, root_path)
    except OSError as exc:  # bad input: a --root or --log-dir opsplay cannot write below
        where = exc.filename or root
        raise OpsplayError(f"cannot install the schedule of {env_name} below --root {root}: "
                           f"{where}: {exc.strerror or exc}") from None  # fmt: skip
    for path in written:
        click.echo(f"wrote {path}")
    for path in removed:
        click.echo(f"removed {path}")
    if not written and not removed:
        click.echo(f"schedule for {env_name} already installed ({fmt})")
    return 0


@command.command("check")
@_ENV
@click.option(
    "--at",
    "at_text",
    envvar="OPSPLAY_SCHEDULE_AT",
    metavar="TIME",
    help="When (ISO 8601, e.g. 2026-12-07T02:30; without an offset: the calendar's zone); "
    "default now.",
)
@click.option(
    "--schedule",
    "schedule_name",
    envvar="OPSPLAY_SCHEDULE",
    metavar="SCHEDULE",
    help="A schedule's run (its own window); default an ad-hoc disruptive procedure (any window).",
)
@click.pass_obj
def check(settings: Settings, env_name: str, at_text: str | None, schedule_name: str | None) -> int:
    """Say whether a disruptive run would be allowed now (or at TIME) and why; exit 7 if not."""
    import datetime as dt

    from opsplay import maintenance_calendar
    from opsplay.environment import load_environment
    from opsplay.errors import ExitCode, OpsplayError

    env = load_environment(settings.inventories(), env_name)
    calendar = maintenance_calendar.load(env.path)
    if calendar is None:
        click.echo(f"{env.name} has no maintenance calendar: every run is allowed")
        return 0
    if schedule_name and schedule_name not in maintenance_calendar.SCHEDULES:
        raise OpsplayError(f"unknown schedule '{schedule_name}'")
    moment = dt.datetime.now(dt.UTC)
    if at_text:
        try:
            moment = dt.datetime.fromisoformat(at_text)
        except ValueError:
            raise OpsplayError(f"--at {at_text}: not an ISO 8601 time (2026-12-07T02:30)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=calendar.zone)
    decision = calendar.decide(moment, schedule_name)
    click.echo(("allowed: " if decision.allowed else "") + decision.reason)
    return 0 if decision.allowed else int(ExitCode.OUTSIDE_WINDOW)


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


def _calendar_lines(settings: Settings, env_name: str) -> list[str]:
    """The calendar as comment lines: each schedule's next window (local and UTC) with what
    runs in it, and the freezes; nothing without a calendar."""
    import datetime as dt

    from opsplay import maintenance_calendar
    from opsplay.environment import load_environment

    env = load_environment(settings.inventories(), env_name)
    calendar = maintenance_calendar.load(env.path)
    if calendar is None:
        return []
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# maintenance calendar of {env.name} ({calendar.timezone}, {env.path / 'calendar.yml'})"
    ]
    for name, window in calendar.windows.items():
        nxt = calendar.next_window(now, (name,))
        if nxt is None:
            lines.append(
                f"# {name} {window.text()}: no window in the next year outside the freezes"
            )
            continue
        start, end = nxt.start.astimezone(calendar.zone), nxt.end.astimezone(calendar.zone)
        local = f"{start:%a %Y-%m-%d %H:%M}-{end:%H:%M}"
        utc = f"{nxt.start:%Y-%m-%d %H:%M}-{nxt.end:%H:%M} UTC"
        lines.append(
            f"# next {name} window: {local} ({utc}): opsplay maintenance {name} --env {env.name}"
        )
    lines += [f"# freeze {freeze.text()}" for freeze in calendar.freezes]
    return lines


def _jobs(settings: Settings, env_name: str, log_dir: str, status_every: int) -> list[Job]:
    import os
    import shutil
    import sys
    from pathlib import Path

    from opsplay.environment import load_environment
    from opsplay.errors import OpsplayError
    from opsplay.schedules import Job, When, load_times

    env = load_environment(settings.inventories(), env_name)
    beside = Path(sys.executable).parent / "opsplay"
    opsplay = str(beside) if beside.is_file() else shutil.which("opsplay")
    if not opsplay:
        raise OpsplayError("cannot find the opsplay executable to schedule")
    metrics_dir = os.environ.get("OPSPLAY_METRICS_DIR")
    common = {
        "env": env.name,
        "opsplay": str(Path(opsplay).absolute()),
        "inventory_dir": settings.inventories().absolute(),
        "state_dir": settings.state().absolute(),
        "log_dir": Path(log_dir),
        "metrics_dir": Path(metrics_dir).absolute() if metrics_dir else None,
    }
    jobs = [
        Job(schedule=name, when=when, **common)  # type: ignore[arg-type]
        for name, when in load_times(env.path).items()
        if when is not None
    ]
    if status_every:
        jobs.append(Job(schedule="status", when=When(0, 0, every_minutes=status_every), **common))  # type: ignore[arg-type]
    return jobs
