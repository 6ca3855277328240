"""The pg_backup role's report of one backup run and its Prometheus textfile (the decisions the
role made in Jinja before: the run's one-line message, why an off-host copy failed, and the
metrics built from the manifests). Pure functions of registered results and manifests; the
module opsplay.ops.pg_backup_report writes the file and fails or passes the host."""

from __future__ import annotations

from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import is_good
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import parse_iso

MB = 1048576.0


def ran(result):
    """The registered result of a task that ran (not skipped, not absent), else None."""
    if not isinstance(result, dict) or not result or result.get("skipped"):
        return None
    return result


def summarize(backups):
    """Per database: good/bad counts, the newest good backup's end, size and duration, the
    newest restore test. backups: listing entries (oldest first) with a ``good`` flag."""
    summary = {}
    for b in backups:
        entry = summary.setdefault(b["database"], {"good": 0, "bad": 0})
        entry["good" if b["good"] else "bad"] += 1
        if b["good"]:
            entry.update(
                last_success=int(parse_iso(b["ended"]).timestamp()),
                size_bytes=b["size_bytes"],
                duration_seconds=b["duration_seconds"],
            )
        test = b.get("restore_test") or {}
        if test.get("at") and test["at"] >= entry.get("restore_test_at", ""):
            entry.update(
                restore_test_at=test["at"],
                restore_test_ok=bool(test.get("ok")),
                restore_test_timestamp=int(parse_iso(test["at"]).timestamp()),
            )
    return summary


def summary_of_manifests(manifests):
    """summarize() of manifests as read from disk (recorded verification, not re-checked)."""
    return summarize(
        [dict(m, good=is_good(m)) for m in manifests if isinstance(m.get("database"), str)]
    )


METRICS = (
    # (name, help, key that must be present, value of an entry)
    (
        "opsplay_pg_backup_last_success_timestamp_seconds",
        "End time of the newest verified backup.",
        "last_success",
        lambda s: s["last_success"],
    ),
    (
        "opsplay_pg_backup_last_size_bytes",
        "Size of the newest verified backup.",
        "last_success",
        lambda s: s["size_bytes"],
    ),
    (
        "opsplay_pg_backup_last_duration_seconds",
        "Duration of the newest verified backup (dump, verify, checksum).",
        "last_success",
        lambda s: s["duration_seconds"],
    ),
    (
        "opsplay_pg_backup_restore_test_timestamp_seconds",
        "Time of the last restore test.",
        "restore_test_at",
        lambda s: s["restore_test_timestamp"],
    ),
    (
        "opsplay_pg_backup_restore_test_success",
        "Whether the last restore test passed (1) or failed (0).",
        "restore_test_at",
        lambda s: 1 if s["restore_test_ok"] else 0,
    ),
)


def _gauge(name, text):
    return ["# HELP %s %s" % (name, text), "# TYPE %s gauge" % name]


def prom_text(summary):
    """The textfile for node_exporter's textfile collector (databases sorted by name)."""
    lines = ["# Managed by opsplay (pg_backup role): rewritten by every backup run."]
    databases = sorted(summary)
    for name, text, needs, value in METRICS[:3]:
        lines += _gauge(name, text)
        lines += [
            '%s{database="%s"} %s' % (name, db, value(summary[db]))
            for db in databases
            if needs in summary[db]
        ]
    lines += _gauge(
        "opsplay_pg_backup_backups",
        "Backups on disk, by state (good: verified; bad: failed verification).",
    )
    for db in databases:
        for state in ("good", "bad"):
            lines.append(
                'opsplay_pg_backup_backups{database="%s",state="%s"} %d'
                % (db, state, summary[db][state])
            )
    for name, text, needs, value in METRICS[3:]:
        lines += _gauge(name, text)
        lines += [
            '%s{database="%s"} %s' % (name, db, value(summary[db]))
            for db in databases
            if needs in summary[db]
        ]
    return "\n".join(lines) + "\n"


def rsync_error(rsync, host):
    """The first line of rsync's or ssh's complaint, or '' when the copy went through."""
    rsync = ran(rsync)
    if not rsync or rsync.get("rc", 0) == 0:
        return ""
    lines = [line.strip() for line in (rsync.get("stderr") or "").splitlines() if line.strip()]
    if any("No space left on device" in line for line in lines):
        return "disk full on %s (No space left on device)" % host
    for line in lines:
        if line.startswith(("ssh", "Host key", "kex_", "Connection")):
            return line
    return lines[0] if lines else "rsync exited with %s" % rsync.get("rc")


def offsite_problem(offsite):
    """Why the off-host copy failed, or '' (offsite: host, plan, rsync, receive results)."""
    host = offsite.get("host") or ""
    if not host or not ran(offsite.get("plan")):
        return ""
    error = rsync_error(offsite.get("rsync"), host)
    if error:
        return (
            "offsite copy to %s failed: %s; local backups made and verified, nothing new on %s"
            % (host, error, host)
        )
    receive = ran(offsite.get("receive"))
    if receive and ("promoted" not in receive or receive.get("bad")):
        return "offsite copy to %s failed: %s; earlier copies untouched" % (
            host,
            receive.get("msg", "failed"),
        )
    return ""


def offsite_message(offsite, check_mode):
    """The report's part about the off-host copies."""
    host = offsite.get("host") or ""
    plan = ran(offsite.get("plan"))
    if not host:
        return "offsite: off"
    if not plan:
        return "offsite: skipped"
    if check_mode:
        return "offsite: would copy %d (%.1f MB), would prune %d on %s" % (
            len(plan.get("send", [])),
            plan.get("send_bytes", 0) / MB,
            len(plan.get("would_delete", [])),
            host,
        )
    receive = ran(offsite.get("receive")) or {}
    return "offsite: copied %d (%.1f MB), pruned %d on %s" % (
        len(receive.get("promoted", [])),
        receive.get("bytes", 0) / MB,
        len(receive.get("deleted", [])),
        host,
    )


def report(backup, retention, offsite, check_mode):
    """(problem, message) of a backup run: problem '' when the run is good.
    backup: pg_backup_dump's result (with its verify and retention parts); retention: a separate
    pg_backup_retention result (the off-host path) or None; offsite: see offsite_problem."""
    verify = ran(backup.get("verify")) or {}
    retention = ran(retention) or ran(backup.get("retention")) or {}
    if verify.get("bad"):
        return verify["msg"], ""
    problem = offsite_problem(offsite)
    if problem:
        return problem, ""
    return "", "%s; %s; retention %s; %s" % (
        backup.get("msg", ""),
        verify.get("msg", "existing backups not re-verified"),
        retention.get("msg", "off"),
        offsite_message(offsite, check_mode),
    )
