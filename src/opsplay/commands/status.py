"""opsplay status --env ENV: one row per host of what the procedures left behind.

Per host: the newest verified backup's age (the oldest among its databases), the last restore
test, the fewest days left of its certificates, pending security updates and reboot-required
(the security_updates role's record), and the last vacuum; then the last run of each schedule
with its outcome. Host facts come from ``playbooks/queries/status.yml`` (roles/status reads what
the roles recorded on each host; it runs no procedure), the rest from the control node: the run
history and the pg_maintenance reports. The same numbers are written as a Prometheus textfile
(``opsplay-ENV.prom``, ``opsplay.metrics``) so one alert rule covers every procedure.

Read-only: no confirmation, no environment lock (it answers while a window runs).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from opsplay.ages import format_age
from opsplay.options import query_options

if TYPE_CHECKING:
    from pathlib import Path

    from opsplay.environment import Environment
    from opsplay.execute import Channel
    from opsplay.settings import Settings
    from opsplay.state import RunRecord

COLUMNS = (
    "host",
    "backup",
    "restore test",
    "certs",
    "security",
    "reboot",
    "vacuum",
    "maintenance",
)


def host_status(
    probe: dict[str, Any] | None, db_host: bool, last_vacuum: float | None, now: float
) -> dict[str, Any]:
    """One host's row as data, from its probe (None: the host gave none)."""
    if probe is None:
        return {"reachable": False}
    backups = probe.get("backups") or {}
    ages = [b.get("newest_verified_age_seconds") for b in backups.values()]
    missing = sorted(db for db, b in backups.items() if b.get("newest_verified") is None)
    if db_host and not backups:
        missing = ["(no backups)"]
    tests = [
        (b["last_restore_test_age_seconds"], b["last_restore_test_ok"])
        for b in backups.values()
        if b.get("last_restore_test_age_seconds") is not None
    ]
    last_test = min(tests) if tests else None
    certs = probe.get("certificates") or {}
    days = [c["days_left"] for c in certs.values() if "days_left" in c]
    record = probe.get("security_updates")
    reboot = probe.get("reboot") or {}
    return {
        "reachable": True,
        "backup_oldest_newest_age_seconds": max((a for a in ages if a is not None), default=None),
        "backup_missing": missing,
        "restore_test_age_seconds": last_test[0] if last_test else None,
        "restore_test_ok": last_test[1] if last_test else None,
        "cert_min_days_left": min(days) if days else None,
        "cert_unreadable": sorted(p for p, c in certs.items() if "error" in c),
        "security_pending": len(record["pending_security"]) if record else None,
        "security_recorded_age_seconds": record.get("recorded_age_seconds") if record else None,
        "reboot_required": bool(reboot.get("required")),
        "reboot_packages": reboot.get("packages") or [],
        "vacuum_age_seconds": None if last_vacuum is None else int(now - last_vacuum),
        "maintenance": probe.get("maintenance"),
        # per backup set and per certificate, with Unix times: the Prometheus textfile's
        "backups": backups,
        "certificates": certs,
        "security_recorded_timestamp": record.get("recorded_timestamp") if record else None,
        "vacuum_timestamp": None if last_vacuum is None else int(last_vacuum),
    }


def maintenance_text(window: dict[str, Any] | None) -> str:
    """'-', or 'since T (run ID)' for a host in maintenance mode."""
    if not window:
        return "-"
    return f"since {window.get('time') or '?'} (run {window.get('run_id') or 'unknown'})"


def last_vacuums(reports_dir: Path) -> dict[str, float]:
    """Host -> time of the newest real (not --check) vacuum report that lists it."""
    import calendar

    found: dict[str, float] = {}
    if not reports_dir.is_dir():
        return found
    for path in sorted(reports_dir.glob("*-vacuum.json")):  # oldest first, by name
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            when = calendar.timegm(time.strptime(report["time"], "%Y-%m-%dT%H:%M:%SZ"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for host in report.get("hosts") or []:
            if isinstance(host, dict) and host.get("host"):
                found[host["host"]] = when
    return found


def last_schedule_runs(records: list[RunRecord]) -> dict[str, dict[str, Any]]:
    """Schedule -> its newest real run (started, status, exit code), and the windows it missed
    (a run refused outside its window, e.g. a timer's catch-up at boot): the newest one and how
    many the history holds."""
    from opsplay.playbooks import SCHEDULES

    runs: dict[str, dict[str, Any]] = {name: {} for name in SCHEDULES}
    for record in records:  # oldest first
        name = record.what.removeprefix("maintenance ")
        if not record.what.startswith("maintenance ") or name not in runs or record.check:
            continue
        if record.status == "missed":
            missed = runs[name].setdefault("missed", {"count": 0})
            missed.update(
                count=missed["count"] + 1, at=record.started, reason=record.outside_window
            )
            continue
        runs[name].update(
            started=record.started,
            status=record.status,
            exit_code=record.exit_code,
            id=record.id,
        )
    return runs


def rows(status: dict[str, Any]) -> list[tuple[str, ...]]:
    out = []
    for host, row in status["hosts"].items():
        if not row["reachable"]:
            out.append((host, *(["?"] * (len(COLUMNS) - 1))))
            continue
        backup = format_age(row["backup_oldest_newest_age_seconds"])
        if row["backup_missing"]:
            backup = "MISSING " + ",".join(row["backup_missing"])
        test = row["restore_test_ok"]
        tested = (
            "-"
            if test is None
            else f"{'ok' if test else 'FAILED'} {format_age(row['restore_test_age_seconds'])}"
        )
        days = row["cert_min_days_left"]
        certs = "-" if days is None else f"{days:.0f}d"
        pending = row["security_pending"]
        out.append(
            (
                host,
                backup,
                tested,
                certs + (" UNREADABLE" if row["cert_unreadable"] else ""),
                "-" if pending is None else f"{pending} pending",
                "YES" if row["reboot_required"] else "no",
                format_age(row["vacuum_age_seconds"]),
                maintenance_text(row.get("maintenance")),
            )
        )
    return out


def render(status: dict[str, Any], now: float) -> str:
    from opsplay.display import plain_table

    lines = [plain_table(COLUMNS, rows(status))]
    for name, run in status["schedules"].items():
        if run.get("started") is not None:
            when = format_age(now - run["started"])
            outcome = f"{run['status']} (exit {run['exit_code']})"
            lines.append(f"{name:<10} last run {when} ago: {outcome}")
        else:
            lines.append(f"{name:<10} never run")
        missed = run.get("missed")
        if missed:
            ago = format_age(now - missed["at"])
            lines.append(
                f"{'':<10} missed {missed['count']} window(s), the last {ago} ago: "
                f"{missed['reason']}"
            )
    return "\n".join(lines) + "\n"


def collect(
    settings: Settings,
    env_name: str | None,
    limit: str | None,
    vault_password_file: str | None,
    verbosity: int,
    as_json: bool = False,
    channel: Channel | None = None,
) -> tuple[Environment, RunRecord, dict[str, Any], float]:
    """Run the read-only status query and build the status document: (env, run record,
    document, when). The CLI prints it and writes the textfile; ``opsplay.api.status``
    returns it as a FleetStatus."""
    from opsplay.commands.report import reports_root
    from opsplay.execute import run_query
    from opsplay.state import History

    env, record, _ = run_query(
        settings,
        "status",
        env_name,
        limit,
        as_json,
        vault_password_file,
        verbosity,
        channel=channel,
    )
    probes = record.data.get("status") or {}
    now = time.time()
    vacuums = last_vacuums(reports_root(settings) / env.name)
    hosts = [h for h in env.hosts if h in probes or h in record.hosts]
    status = {
        "env": env.name,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "run": {"id": record.id, "status": record.status, "exit_code": record.exit_code},
        "hosts": {
            host: host_status(
                probes.get(host),
                "db_servers" in env.host_groups.get(host, set()),
                vacuums.get(host),
                now,
            )
            for host in hosts
        },
        "schedules": last_schedule_runs(History(settings.state()).records(env.name)),
    }
    return env, record, status, now


@click.command("status")
@query_options
@click.option(
    "--metrics-dir",
    envvar="OPSPLAY_METRICS_DIR",
    type=click.Path(file_okay=False),
    help="Directory of the Prometheus textfile opsplay-ENV.prom (default: "
    "/var/lib/prometheus/node-exporter when writable, else ~/.local/share/opsplay/metrics).",
)
@click.pass_obj
def command(
    settings: Settings,
    env_name: str | None,
    limit: str | None,
    as_json: bool,
    vault_password_file: str | None,
    verbosity: int,
    metrics_dir: str | None,
) -> int:
    """Fleet status: backups, restore tests, certificates, security updates, reboot, vacuum,
    and the last run of each schedule (read-only; also written for Prometheus)."""
    env, record, status, now = collect(
        settings, env_name, limit, vault_password_file, verbosity, as_json=as_json
    )
    from opsplay import metrics

    metrics.write(metrics.textfile_path(metrics_dir, env.name), metrics.registry(status, now))
    if as_json:
        click.echo(json.dumps(status, indent=2, sort_keys=True))
    else:
        click.echo(render(status, now), nl=False)
    for host, row in record.hosts.items():
        if row.get("message"):
            click.echo(f"opsplay: {host}: {row['message']}", err=True)
    return int(record.exit_code or 0)
