"""The Prometheus textfile of ``opsplay status``: what the fleet's hosts hold, for alerting.

Written with prometheus_client's registry and exposition format (HELP and TYPE on every metric,
full float precision, label escaping); one ``opsplay_`` prefix; base units (seconds, bytes) and
Unix timestamps (``_timestamp_seconds``) rather than ages or days, so an alert rule computes
``time() - metric`` itself and a stale file cannot look fresh; labels ``env``, ``host`` and,
per backup set, ``database``. The README has example alert rules.

The file goes to ``OPSPLAY_METRICS_DIR`` (``--metrics-dir``), by default node_exporter's textfile
directory when this user can write it, else ``~/.local/share/opsplay/metrics``: never inside the
private state directory, which node_exporter cannot read. Directory 0755, file 0644 (it holds
host names and times, no secret), replaced atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Debian/Ubuntu's prometheus-node-exporter package reads this directory (--collector.textfile)
NODE_EXPORTER_TEXTFILE_DIR = Path("/var/lib/prometheus/node-exporter")


def default_dir() -> Path:
    """node_exporter's textfile directory when it exists and this user can write it; else a
    directory of this user's data, outside the private state."""
    if NODE_EXPORTER_TEXTFILE_DIR.is_dir() and os.access(NODE_EXPORTER_TEXTFILE_DIR, os.W_OK):
        return NODE_EXPORTER_TEXTFILE_DIR
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "opsplay" / "metrics"


def textfile_path(metrics_dir: str | Path | None, env: str) -> Path:
    return Path(metrics_dir or default_dir()) / f"opsplay-{env}.prom"


def registry(status: dict[str, Any], now: float) -> Any:
    """A prometheus_client registry holding the gauges of one environment's status document
    (``opsplay status --json``)."""
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry()
    env = status["env"]

    def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
        return Gauge(name, doc, labels, registry=reg)

    host_up = gauge(
        "opsplay_host_up", "1 when the host answered the status probe.", ("env", "host")
    )
    backup_time = gauge(
        "opsplay_backup_last_verified_timestamp_seconds",
        "When the newest verified backup of the database ended (Unix time).",
        ("env", "host", "database"),
    )
    backup_ok = gauge(
        "opsplay_backup_verified",
        "1 when the database has a verified backup, 0 when it has none.",
        ("env", "host", "database"),
    )
    backup_bad = gauge(
        "opsplay_backup_bad",
        "Backups on the host that fail verification.",
        ("env", "host", "database"),
    )
    test_time = gauge(
        "opsplay_restore_test_last_timestamp_seconds",
        "When the database's last restore test ran (Unix time).",
        ("env", "host", "database"),
    )
    test_ok = gauge(
        "opsplay_restore_test_success",
        "1 when the database's last restore test passed.",
        ("env", "host", "database"),
    )
    cert_expiry = gauge(
        "opsplay_certificate_expiry_timestamp_seconds",
        "When the certificate expires (notAfter, Unix time).",
        ("env", "host", "certificate"),
    )
    cert_unreadable = gauge(
        "opsplay_certificate_unreadable",
        "1 when a certificate file matched but could not be read.",
        ("env", "host", "certificate"),
    )
    pending = gauge(
        "opsplay_security_updates_pending",
        "Security updates pending at the security_updates role's last plan.",
        ("env", "host"),
    )
    pending_time = gauge(
        "opsplay_security_updates_checked_timestamp_seconds",
        "When the security_updates role last recorded its plan (Unix time).",
        ("env", "host"),
    )
    reboot = gauge(
        "opsplay_reboot_required", "1 when the host asks to be rebooted.", ("env", "host")
    )
    vacuum = gauge(
        "opsplay_vacuum_last_timestamp_seconds",
        "When opsplay last vacuumed the host's databases (Unix time).",
        ("env", "host"),
    )
    window = gauge(
        "opsplay_maintenance_mode",
        "1 while the host is in maintenance mode (503).",
        ("env", "host"),
    )
    window_since = gauge(
        "opsplay_maintenance_mode_since_timestamp_seconds",
        "When the host's open maintenance window started (Unix time).",
        ("env", "host"),
    )
    for host, row in status["hosts"].items():
        host_up.labels(env, host).set(1 if row["reachable"] else 0)
        if not row["reachable"]:
            continue
        for database, backup in (row.get("backups") or {}).items():
            labels = (env, host, database)
            backup_ok.labels(*labels).set(1 if backup.get("newest_verified") else 0)
            backup_bad.labels(*labels).set(backup.get("bad") or 0)
            if backup.get("newest_verified_timestamp") is not None:
                backup_time.labels(*labels).set(backup["newest_verified_timestamp"])
            if backup.get("last_restore_test_timestamp") is not None:
                test_time.labels(*labels).set(backup["last_restore_test_timestamp"])
                test_ok.labels(*labels).set(1 if backup.get("last_restore_test_ok") else 0)
        for path, cert in (row.get("certificates") or {}).items():
            if cert.get("not_after_timestamp") is not None:
                cert_expiry.labels(env, host, path).set(cert["not_after_timestamp"])
            cert_unreadable.labels(env, host, path).set(1 if "error" in cert else 0)
        if row["security_pending"] is not None:
            pending.labels(env, host).set(row["security_pending"])
        if row.get("security_recorded_timestamp") is not None:
            pending_time.labels(env, host).set(row["security_recorded_timestamp"])
        reboot.labels(env, host).set(1 if row["reboot_required"] else 0)
        if row.get("vacuum_timestamp") is not None:
            vacuum.labels(env, host).set(row["vacuum_timestamp"])
        open_window = row.get("maintenance")
        window.labels(env, host).set(1 if open_window else 0)
        if open_window and open_window.get("since_epoch") is not None:
            window_since.labels(env, host).set(open_window["since_epoch"])
    last_run = gauge(
        "opsplay_schedule_last_run_timestamp_seconds",
        "When the schedule's last run started (Unix time).",
        ("env", "schedule"),
    )
    last_ok = gauge(
        "opsplay_schedule_last_run_success",
        "1 when the schedule's last run succeeded.",
        ("env", "schedule"),
    )
    missed = gauge(
        "opsplay_schedule_missed_windows",
        "Runs of the schedule refused outside its window (maintenance calendar) in the history.",
        ("env", "schedule"),
    )
    for name, run in status["schedules"].items():
        if run.get("started") is not None:
            last_run.labels(env, name).set(run["started"])
            last_ok.labels(env, name).set(1 if run["exit_code"] == 0 else 0)
        missed.labels(env, name).set((run.get("missed") or {}).get("count", 0))
    gauge(
        "opsplay_status_timestamp_seconds", "When opsplay status ran (Unix time).", ("env",)
    ).labels(env).set(now)
    return reg


def write(path: Path, reg: Any) -> None:
    """Atomically, 0644 in a 0755 directory: node_exporter reads it as another user.

    prometheus_client's write_to_textfile would give its temporary file the umask's mode
    (0600 under a private umask), so node_exporter could not read the result: the same
    exposition text (generate_latest) is written here with an explicit mode."""
    from prometheus_client import generate_latest

    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(generate_latest(reg))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
