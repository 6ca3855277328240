"""The decisions of opsplay's pg_maintenance role, as pure functions (no connection).

What a VACUUM/REINDEX run checks in its options, which databases it maintains, which tables it
vacuums (and which ones FULL), which indexes it rebuilds and which invalid ones it drops, the
statements and the lock each takes, and the per-database report rows and messages.
plugins/modules/pg_maintenance_tables.py feeds these with what the server answered.
"""

from __future__ import annotations

import re

from ansible_collections.opsplay.ops.plugins.module_utils import timestamps

# PostgreSQL time values accepted for lock_timeout / statement_timeout.
PG_TIME = re.compile(r"^[0-9]+ ?(us|ms|s|min|h|d)?$")
# Unquoted schema.table of pg_maintenance_vacuum_full_tables.
SCHEMA_TABLE = re.compile(r"^[^.]+[.][^.]+$")
# The transient indexes of REINDEX INDEX CONCURRENTLY: *_ccnew, *_ccold (and *_ccnew1 ...).
TRANSIENT = re.compile(r"_cc(new|old)[0-9]*$")

# The lock each statement takes on its table: what it blocks while it runs.
LOCKS = {
    "vacuum": "SHARE UPDATE EXCLUSIVE",
    "vacuum_full": "ACCESS EXCLUSIVE",
    "reindex": "SHARE UPDATE EXCLUSIVE",
    "drop": "SHARE UPDATE EXCLUSIVE",
}
ACTIONS = ("vacuum", "reindex", "report")
MODES = ("targeted", "full")


class Window:
    """The end of the maintenance window (``pg_maintenance_stop_at``, ISO UTC, empty: none):
    no VACUUM or REINDEX of a further object starts at or after it. ``clock`` gives the current
    UTC time (timestamps.now; tests pass their own)."""

    def __init__(self, stop_at: str = "", clock=timestamps.now):
        self.stop = timestamps.parse_iso(stop_at) if stop_at else None
        self.clock = clock
        self.ended_once = False

    def ended(self) -> bool:
        """Whether the window has ended now (never when it has no end); remembered once true."""
        if self.stop is not None and self.clock() >= self.stop:
            self.ended_once = True
        return self.ended_once

    def text(self) -> str:
        return self.stop.strftime("%Y-%m-%d %H:%M:%S") + " (UTC)" if self.stop else ""


def stop_at_problem(stop_at) -> list:
    """pg_maintenance_stop_at's problem, if any (empty or ISO UTC ``2026-12-07T03:00:00Z``)."""
    if not stop_at:
        return []
    try:
        timestamps.parse_iso(stop_at)
    except ValueError:
        return [
            "pg_maintenance_stop_at %r is not a UTC time like 2026-12-07T03:00:00Z" % (stop_at,)
        ]
    return []


def option_problems(lock_timeout, statement_timeout, full_tables, stop_at="") -> list:
    """Every bad option, one message each (empty: the options are good)."""
    problems = stop_at_problem(stop_at)
    for name, value in (
        ("pg_maintenance_lock_timeout", lock_timeout),
        ("pg_maintenance_statement_timeout", statement_timeout),
    ):
        if not PG_TIME.match(str(value)):
            problems.append(
                "%s '%s' is not a PostgreSQL time (e.g. 5s, 500ms, 1min, 1h)" % (name, value)
            )
    for item in full_tables or []:
        good = (
            isinstance(item, dict)
            and item.get("database")
            and SCHEMA_TABLE.match(str(item.get("table") or ""))
        )
        if not good:
            problems.append(
                "pg_maintenance_vacuum_full_tables item %s needs database and table (schema.table)"
                % _json(item)
            )
    return problems


def _json(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def database_list(value) -> list:
    """pg_maintenance_databases as a list of names: ``a,b`` (from ``-e``) or a list."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in items if str(item).strip()]


def choose_databases(catalog: list, wanted: list) -> dict:
    """From pg_database rows ({name, template, allow_connections}): the databases to maintain
    (``wanted``, else every connectable non-template one), those that exist, those missing."""
    existing = sorted(d["name"] for d in catalog if not d["template"] and d["allow_connections"])
    connectable = {d["name"] for d in catalog if d["allow_connections"]}
    if wanted:
        chosen = sorted(name for name in set(wanted) if name in connectable)
        missing = [name for name in wanted if name not in connectable]
    else:
        chosen, missing = existing, []
    return {"databases": chosen, "existing": existing, "missing": missing}


def full_tables_of(full_tables: list, database: str) -> set:
    """The schema.table names listed for VACUUM FULL in ``database``."""
    return {t["table"] for t in full_tables or [] if t.get("database") == database}


def vacuum_reason(table: dict, thresholds: dict, full_mode: bool):
    """Why ``table`` is vacuumed ('dead tuples', 'modified since analyze', 'full mode'), or None."""
    if (
        table["n_dead_tup"] >= thresholds["vacuum_min_dead_tuples"]
        and table["dead_ratio"] >= thresholds["vacuum_dead_ratio"]
    ):
        return "dead tuples"
    if (
        table["n_mod_since_analyze"] >= thresholds["analyze_min_modifications"]
        and table["mod_ratio"] >= thresholds["analyze_mod_ratio"]
    ):
        return "modified since analyze"
    return "full mode" if full_mode else None


def select_vacuum(tables: list, thresholds: dict, full_mode: bool, full: set) -> list:
    """The tables to vacuum, most dead tuples first: each with its reason and whether it gets
    VACUUM FULL (only the tables listed in ``full``, by unquoted schema.table)."""
    chosen = []
    for t in tables:
        reason = vacuum_reason(t, thresholds, full_mode)
        if reason:
            chosen.append(
                {
                    "name": t["name"],
                    "vacuum_full": t["plain_name"] in full,
                    "n_dead_tup": t["n_dead_tup"],
                    "dead_ratio": t["dead_ratio"],
                    "n_mod_since_analyze": t["n_mod_since_analyze"],
                    "mod_ratio": t["mod_ratio"],
                    "reason": reason,
                }
            )
    return sorted(chosen, key=lambda v: (-v["n_dead_tup"], v["name"]))


def is_leftover(index: dict) -> bool:
    """An invalid transient index of REINDEX CONCURRENTLY that no running build is making."""
    return not index["valid"] and bool(TRANSIENT.search(index["relname"])) and not index["building"]


def select_reindex(indexes: list, thresholds: dict, full_mode: bool) -> list:
    """The indexes to rebuild, biggest first: valid, not transient, and (targeted mode) with an
    estimated bloat and size over the thresholds; every such index in full mode."""
    chosen = []
    for x in indexes:
        if not x["valid"] or TRANSIENT.search(x["relname"]):
            continue
        bloat = x.get("bloat_ratio")
        over = (
            bloat is not None
            and bloat >= thresholds["reindex_bloat_ratio"]
            and x["bytes"] >= thresholds["reindex_min_bytes"]
        )
        if full_mode or over:
            chosen.append(
                {"name": x["name"], "table": x["table"], "bytes": x["bytes"], "bloat_ratio": bloat}
            )
    return sorted(chosen, key=lambda r: (-r["bytes"], r["name"]))


def leftovers_of(indexes: list, database: str) -> list:
    """The invalid transient indexes to drop, by name."""
    found = [
        {"database": database, "name": x["name"], "table": x["table"]}
        for x in indexes
        if is_leftover(x)
    ]
    return sorted(found, key=lambda x: x["name"])


def plan_database(facts: dict, options: dict) -> dict:
    """One database's report (``facts``: what inspect.sql answered) with the decisions added:
    vacuum, reindex, leftovers, invalid_indexes (the other invalid ones, left alone)."""
    full_mode = options["mode"] == "full"
    thresholds = options["thresholds"]
    indexes = facts.get("indexes") or []
    report = {k: v for k, v in facts.items() if k not in ("tables", "indexes")}
    full = full_tables_of(options.get("vacuum_full_tables") or [], facts["database"])
    report["vacuum"] = select_vacuum(facts.get("tables") or [], thresholds, full_mode, full)
    report["reindex"] = select_reindex(indexes, thresholds, full_mode)
    report["leftovers"] = leftovers_of(indexes, facts["database"])
    report["invalid_indexes"] = sorted(
        x["name"] for x in indexes if not x["valid"] and not is_leftover(x)
    )
    return report


def vacuum_statements(selection: list, one_per_table: bool = False) -> list:
    """The VACUUM statements for the selected tables, each with the lock it takes: one for the
    plain ones (one per table when ``one_per_table``: a window's end is checked between them),
    one per VACUUM FULL table."""
    plain = [v["name"] for v in selection if not v["vacuum_full"]]
    groups = [[name] for name in plain] if one_per_table else [plain] if plain else []
    statements = [
        {
            "sql": "VACUUM (ANALYZE, SKIP_LOCKED) " + ", ".join(group),
            "lock": LOCKS["vacuum"],
            "tables": group,
        }
        for group in groups
    ]
    for v in selection:
        if v["vacuum_full"]:
            statements.append(
                {
                    "sql": "VACUUM (FULL, ANALYZE, SKIP_LOCKED) " + v["name"],
                    "lock": LOCKS["vacuum_full"],
                    "tables": [v["name"]],
                }
            )
    return statements


def reindex_statement(index_name: str) -> dict:
    """The rebuild of one index: concurrent, so reads and writes of its table go on."""
    return {"sql": "REINDEX INDEX CONCURRENTLY " + index_name, "lock": LOCKS["reindex"]}


def drop_statement(index_name: str) -> dict:
    """The drop of one invalid leftover index."""
    return {"sql": "DROP INDEX CONCURRENTLY IF EXISTS " + index_name, "lock": LOCKS["drop"]}


def no_actions() -> dict:
    """The actions of a database where nothing ran (check mode, report)."""
    return {
        "vacuumed": [],
        "vacuum_skipped_locked": [],
        "reindexed": [],
        "reindex_failed": [],
        "dropped_invalid": [],
        "not_started": [],
    }


def vacuum_outcome(selection: list, not_vacuumed: list, failed: list = ()) -> dict:
    """What a vacuum session did: the tables done, and those skipped because locked (not
    analyzed since the session began, and not in a statement that ``failed``)."""
    tables = [v["name"] for v in selection if v["name"] not in failed]
    skipped = [name for name in not_vacuumed if name in tables]
    return {
        "vacuumed": [name for name in tables if name not in skipped],
        "vacuum_skipped_locked": skipped,
    }


def reindex_failure(index_name: str, error: str) -> str:
    return "REINDEX INDEX CONCURRENTLY %s failed: %s" % (index_name, error)


def drop_failure(index_name: str, error: str) -> str:
    return "DROP INDEX CONCURRENTLY %s failed, the next run retries: %s" % (index_name, error)


def vacuum_failure(database: str, tables: list, error: str) -> str:
    return "VACUUM of %s in database %s failed: %s" % (", ".join(tables), database, error)


def _planned(db: dict, key: str) -> list:
    """The names selected under ``key`` (vacuum, reindex) that were not left unstarted."""
    left = db["actions"].get("not_started") or []
    return [x["name"] for x in db[key] if x["name"] not in left]


def _database_line(action: str, check: bool, db: dict, window: str = "") -> str:
    a = db["actions"]
    parts = []
    if action == "vacuum":
        tables = _planned(db, "vacuum") if check else a["vacuumed"]
        parts.append(("would vacuum " if check else "vacuumed ") + (", ".join(tables) or "nothing"))
        if a["vacuum_skipped_locked"]:
            parts.append("skipped (locked) " + ", ".join(a["vacuum_skipped_locked"]))
    elif action == "reindex":
        rebuilt = _planned(db, "reindex") if check else a["reindexed"]
        parts.append(
            ("would rebuild " if check else "rebuilt ") + (", ".join(rebuilt) or "nothing")
        )
        drops = [x["name"] for x in db["leftovers"]] if check else a["dropped_invalid"]
        if drops:
            parts.append(
                ("would drop invalid " if check else "dropped invalid ") + ", ".join(drops)
            )
    else:
        parts.append(
            "%d tables over the vacuum thresholds, %d indexes over the bloat threshold"
            % (len(db["vacuum"]), len(db["reindex"]))
        )
    if a.get("not_started"):
        parts.append(not_started_line(window, a["not_started"]))
    return "%s: %s" % (db["database"], "; ".join(parts))


def not_started_line(window: str, names: list) -> str:
    return "not started, the window ended at %s: %s" % (window, ", ".join(names))


def summary(action: str, mode: str, check: bool, databases: list, window: str = "") -> str:
    """One line: what was (or, in check mode, would be) done, per database; the objects not
    started because the window (ending at ``window``) had ended."""
    lines = [_database_line(action, check, db, window) for db in databases]
    return "%s (%s%s): %s" % (action, mode, ", check" if check else "", " | ".join(lines))
