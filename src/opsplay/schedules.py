"""Cron entries or systemd timers on the control node that run the maintenance schedules.

Times come from ``inventories/ENV/schedule.yml`` (optional); the defaults are the runbooks'
calendar. Each job runs ``opsplay maintenance SCHEDULE --env ENV --yes --json`` under ``flock -n``
(on top of opsplay's own environment lock), appending to a log file. Next to them, a ``status``
job refreshes ``opsplay status --env ENV`` (its Prometheus textfile) every few minutes (default
15), under a lock of its own: read-only, it runs beside a window. ``render`` is the single
source of what ``show`` prints and ``install`` writes.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from opsplay.errors import ExitCode, OpsplayError

SCHEDULE_FILE = "schedule.yml"
DEFAULT_TIMES = {
    "daily": "09:00",  # the runbooks' morning health check
    "weekly": "Mon 02:00",  # security updates, Monday 02:00
    "monthly": "1 03:00",  # day 1 of the month
    "quarterly": "1 04:00",  # day 1 of January, April, July, October
}
QUARTER_MONTHS = (1, 4, 7, 10)
STATUS_EVERY_MINUTES = 15  # the status refresh (metrics); 0 installs none
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_TIME = re.compile(r"^(?:(?P<day>[A-Za-z]{3}|[0-9]{1,2})\s+)?(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})$")
MARKER = "# Managed by opsplay schedule install; changes are overwritten."


@dataclass(frozen=True)
class When:
    hour: int
    minute: int
    weekday: str | None = None  # Mon..Sun (weekly)
    day: int | None = None  # day of month (monthly, quarterly)
    months: tuple[int, ...] = ()  # quarterly
    every_minutes: int | None = None  # a refresh every N minutes (hour/minute unused)
    timezone: str | None = None  # the maintenance calendar's zone (systemd timers say it)

    def cron(self) -> str:
        if self.every_minutes:
            return f"*/{self.every_minutes} * * * *"
        day = str(self.day) if self.day else "*"
        months = ",".join(map(str, self.months)) or "*"
        weekday = self.weekday.lower() if self.weekday else "*"
        return f"{self.minute} {self.hour} {day} {months} {weekday}"

    def on_calendar(self) -> str:
        if self.every_minutes:
            return f"*-*-* *:00/{self.every_minutes}:00"
        months = ",".join(f"{m:02d}" for m in self.months) or "*"
        day = f"{self.day:02d}" if self.day else "*"
        prefix = f"{self.weekday} " if self.weekday else ""
        zone = f" {self.timezone}" if self.timezone else ""
        return f"{prefix}*-{months}-{day} {self.hour:02d}:{self.minute:02d}:00{zone}"


def parse_time(schedule: str, text: str) -> When:
    match = _TIME.match(str(text).strip())
    hour, minute = (int(match["h"]), int(match["m"])) if match else (-1, -1)
    day = match["day"] if match else None
    ok = match is not None and 0 <= hour < 24 and 0 <= minute < 60
    if schedule == "daily":
        ok = ok and day is None
    elif schedule == "weekly":
        ok = ok and day is not None and day.capitalize() in _DAYS
    else:
        ok = ok and day is not None and day.isdigit() and 1 <= int(day) <= 28
    if not ok:
        examples = {"daily": "09:00", "weekly": "Mon 02:00"}
        example = examples.get(schedule, "1 03:00 (day 1-28 and time)")
        raise OpsplayError(f"bad time '{text}' for the {schedule} schedule (e.g. {example})")
    if schedule == "weekly":
        return When(hour, minute, weekday=str(day).capitalize())
    if schedule in ("monthly", "quarterly"):
        months = QUARTER_MONTHS if schedule == "quarterly" else ()
        return When(hour, minute, day=int(str(day)), months=months)
    return When(hour, minute)


def load_times(env_dir: Path) -> dict[str, When | None]:
    """Times per schedule (None: disabled with ``off``). With a maintenance calendar
    (``calendar.yml``), each schedule starts at its window's start, in the calendar's zone, and
    a schedule without a window does not run; otherwise the defaults, overridden by
    schedule.yml."""
    from opsplay import maintenance_calendar

    calendar = maintenance_calendar.load(env_dir)
    if calendar is not None:
        if (env_dir / SCHEDULE_FILE).is_file():
            raise OpsplayError(
                f"{env_dir}: both {SCHEDULE_FILE} and {maintenance_calendar.CALENDAR_FILE}: the "
                "calendar's windows give the schedules' times; remove schedule.yml"
            )
        times: dict[str, When | None] = dict.fromkeys(DEFAULT_TIMES)
        for name, window in calendar.windows.items():
            weekday = _DAYS[window.weekday] if window.weekday is not None else None
            times[name] = When(
                window.start.hour,
                window.start.minute,
                weekday=weekday,
                day=window.day,
                months=window.months,
                timezone=calendar.timezone,
            )
        return times
    return _schedule_file_times(env_dir)


def _schedule_file_times(env_dir: Path) -> dict[str, When | None]:
    import yaml

    texts: dict[str, object] = dict(DEFAULT_TIMES)
    path = env_dir / SCHEDULE_FILE
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            raise OpsplayError(f"malformed {path}") from None
        if not isinstance(data, dict) or set(data) - set(DEFAULT_TIMES):
            raise OpsplayError(f"{path}: expected keys among {', '.join(DEFAULT_TIMES)}")
        texts.update(data)
    times: dict[str, When | None] = {}
    for name, text in texts.items():
        disabled = text is False or str(text).lower() == "off"
        times[name] = None if disabled else parse_time(name, str(text))
    return times


@dataclass(frozen=True)
class Job:
    env: str
    schedule: str
    when: When
    opsplay: str
    inventory_dir: Path
    state_dir: Path
    log_dir: Path
    metrics_dir: Path | None = None  # OPSPLAY_METRICS_DIR of the installing user, if set

    @property
    def unit(self) -> str:
        return f"opsplay-{self.env}-{self.schedule}"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.env}-{self.schedule}.log"

    def argv(self) -> list[str]:
        if self.schedule == "status":  # read-only: its own lock, so refreshes never pile up
            lock = f"/run/lock/opsplay-{self.env}-status.lock"
            return ["/usr/bin/flock", "-n", lock, self.opsplay, "status", "--env", self.env]
        lock = f"/run/lock/opsplay-{self.env}.lock"
        return [
            "/usr/bin/flock",
            "-n",
            lock,
            self.opsplay,
            "maintenance",
            self.schedule,
            "--env",
            self.env,
            "--yes",
            "--json",
        ]


def render(jobs: list[Job], fmt: str) -> dict[Path, str]:
    """Relative path (under the root, e.g. etc/cron.d/opsplay-prod) -> file content."""
    if not jobs:
        return {}
    if fmt == "cron":
        return {Path("etc/cron.d") / f"opsplay-{jobs[0].env}": _cron(jobs)}
    files = {}
    for job in jobs:
        base = Path("etc/systemd/system") / job.unit
        files[base.with_suffix(".service")] = _service(job)
        files[base.with_suffix(".timer")] = _timer(job)
    return files


def _cron(jobs: list[Job]) -> str:
    first = jobs[0]
    from opsplay.maintenance_calendar import local_zone_name

    zones = {job.when.timezone for job in jobs if job.when.timezone}
    if zones - {local_zone_name()}:
        raise OpsplayError(
            f"the maintenance calendar's time zone {', '.join(sorted(zones))} is not the control "
            f"node's ({local_zone_name()}): cron would run at the wrong hour; use --format systemd"
        )
    lines = [
        MARKER,
        f"# opsplay maintenance schedules for the {first.env} environment.",
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"OPSPLAY_INVENTORY_DIR={first.inventory_dir}",
        f"OPSPLAY_STATE_DIR={first.state_dir}",
        *([f"OPSPLAY_METRICS_DIR={first.metrics_dir}"] if first.metrics_dir else []),
    ]
    for job in jobs:
        log = shlex.quote(str(job.log_file))
        # the status refresh logs only its errors (its table every few minutes would fill it)
        out = f">/dev/null 2>>{log}" if job.schedule == "status" else f">>{log} 2>&1"
        command = f"{shlex.join(job.argv())} {out}"
        lines.append(f"{job.when.cron()} root {command}")
    return "\n".join(lines) + "\n"


def _description(job: Job) -> str:
    if job.schedule == "status":
        return f"opsplay status refresh (metrics) of {job.env}"
    return f"opsplay maintenance {job.schedule} on {job.env}"


def _service(job: Job) -> str:
    metrics = f'Environment="OPSPLAY_METRICS_DIR={job.metrics_dir}"\n' if job.metrics_dir else ""
    return (
        f"{MARKER}\n[Unit]\nDescription={_description(job)}\n"
        "Wants=network-online.target\nAfter=network-online.target\n\n"
        "[Service]\nType=oneshot\n"
        f'Environment="OPSPLAY_INVENTORY_DIR={job.inventory_dir}"\n'
        f'Environment="OPSPLAY_STATE_DIR={job.state_dir}"\n'
        f"{metrics}"
        f"ExecStart={shlex.join(job.argv())}\n"
        f"StandardOutput={'null' if job.schedule == 'status' else f'append:{job.log_file}'}\n"
        f"StandardError=append:{job.log_file}\n"
    )


def _timer(job: Job) -> str:
    # a missed status refresh is not caught up at boot: the next one comes within minutes
    persistent = "" if job.when.every_minutes else "Persistent=true\n"
    return (
        f"{MARKER}\n[Unit]\nDescription={_description(job)}\n\n"
        f"[Timer]\nOnCalendar={job.when.on_calendar()}\n{persistent}"
        f"Unit={job.unit}.service\n\n[Install]\nWantedBy=timers.target\n"
    )


def installed(env: str, root: Path) -> list[Path]:
    """The files opsplay installed for ``env`` below ``root`` (both formats)."""
    found = [root / "etc/cron.d" / f"opsplay-{env}"]
    unit_dir = root / "etc/systemd/system"
    if unit_dir.is_dir():
        found += sorted(unit_dir.glob(f"opsplay-{env}-*.service"))
        found += sorted(unit_dir.glob(f"opsplay-{env}-*.timer"))
    return [p for p in found if p.is_file() and MARKER in p.read_text(encoding="utf-8")]


def install(env: str, files: dict[Path, str], root: Path) -> tuple[list[Path], list[Path]]:
    """Make the installed files for ``env`` exactly ``files``: write what differs, remove the
    rest (the other format, a schedule switched off). Returns (written, removed). Timers are
    enabled and disabled through systemctl when ``root`` is ``/``."""
    live = root == Path("/")
    stale = [p for p in installed(env, root) if p.relative_to(root) not in files]
    stale_timers = [p.name for p in stale if p.suffix == ".timer"]
    if stale_timers and live:
        _systemctl("disable", "--now", *stale_timers)
    for path in stale:
        path.unlink()
    written = []
    for relative, content in files.items():
        path = root / relative
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.opsplay-tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(path)
        written.append(path)
    timers = [p.name for p in files if p.suffix == ".timer"]
    if live and (written or stale_timers) and (timers or stale_timers):
        _systemctl("daemon-reload")
        if timers:
            _systemctl("enable", "--now", *timers)
    return written, stale


def _systemctl(*args: str) -> None:
    try:
        proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OpsplayError("systemctl not found: use --format cron", ExitCode.ERROR) from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise OpsplayError(
            f"systemctl {' '.join(args)} failed: {detail[-1] if detail else proc.returncode}",
            ExitCode.ERROR,
        )
