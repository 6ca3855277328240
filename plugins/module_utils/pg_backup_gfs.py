"""Grandfather-father-son retention of opsplay's PostgreSQL backups, as pure functions: which
backups to delete and why the others are kept (pg_backup_retention on the database host,
pg_backup_offsite on the backup host)."""

from __future__ import annotations

from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import is_good
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import parse_iso

# (rule, key of the retention's counts, the calendar bucket of a start time)
RULES = (
    ("daily", "keep_daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", "keep_weekly", lambda t: "%d-W%02d" % t.isocalendar()[:2]),
    ("monthly", "keep_monthly", lambda t: t.strftime("%Y-%m")),
)


def keep_reasons(good, keep):
    """{name: [reasons]} of the verified backups of one database (newest first) that stay."""
    reasons = {m["name"]: ["last"] for m in good[: max(1, keep["keep_last"])]}
    for rule, count_key, bucket in RULES:
        seen = []
        for m in good:
            key = bucket(parse_iso(m["started"]))
            if key in seen:
                continue
            if len(seen) >= keep[count_key]:
                break
            seen.append(key)
            reasons.setdefault(m["name"], []).append(rule)
    return reasons


def gfs(items, keep, not_good=()):
    """Grandfather-father-son over manifests: (the ones to delete, {kept name: reasons}).

    keep holds keep_last, keep_daily, keep_weekly and keep_monthly. Only verified backups count
    and only they are ever deleted; the newest verified backup of each database is always kept.
    A database without a verified backup loses nothing."""
    by_db = {}
    for m in items:
        by_db.setdefault(m.get("database"), []).append(m)
    delete, kept = [], {}
    for _database, group in sorted(by_db.items(), key=lambda kv: str(kv[0])):
        good = [m for m in group if is_good(m) and m["name"] not in not_good]
        if not good:
            continue  # nothing verified to fall back on: delete nothing
        good.sort(key=lambda m: m["started"], reverse=True)
        reasons = keep_reasons(good, keep)
        kept.update({name: "+".join(r) for name, r in reasons.items()})
        # Only verified backups are pruned; bad ones stay for inspection (and keep failing
        # verification until someone removes them).
        delete += [m for m in good if m["name"] not in reasons]
    return delete, kept
