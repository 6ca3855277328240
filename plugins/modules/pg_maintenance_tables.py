#!/usr/bin/python3
"""Ansible module: VACUUM (ANALYZE) and REINDEX INDEX CONCURRENTLY where needed, with a report.

The whole of roles/pg_maintenance's main entry point on one host, in one module call: check the
options, ask the server for its databases and blocked sessions, inspect each database in one
round trip, decide (plugins/module_utils/pg_maintenance.py), act unless in check mode, and
return this host's report, its one-line summary and the failures.

With ``stop_at`` (the maintenance window's end, ISO UTC) no VACUUM or REINDEX of a further object
starts at or after it: the objects left are reported as not started because the window ended
(``window`` in the result); the drops of invalid leftovers still run (cleanup, not new work).

With ``os_user`` (the role's pg_maintenance_become_user) the PostgreSQL work runs as that OS
user: in this process when Ansible runs the module as that user, in a forked child that drops to
it when Ansible runs the module as root (plugins/module_utils/os_user.py: no second interpreter
on the host), and not at all as any other user: the result then only says ``needs_become`` and
the role runs the module again through become.
"""

from __future__ import annotations

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import os_user, timestamps
from ansible_collections.opsplay.ops.plugins.module_utils import pg_maintenance as plan
from ansible_collections.opsplay.ops.plugins.module_utils.postgres import (
    CONNECTION_SPEC,
    PostgresError,
    connect,
    error_line,
    missing_databases,
)

SETTINGS_SQL = (
    "SELECT set_config('lock_timeout', %(lock_timeout)s, false),"
    " set_config('statement_timeout', %(statement_timeout)s, false)"
)
# The tables of %(tables)s whose last analyze is older than this session's start: skipped by
# SKIP_LOCKED because another session held a conflicting lock. Runs last in the vacuum session.
NOT_VACUUMED_SQL = (
    "SELECT quote_ident(schemaname) || '.' || quote_ident(relname) AS name"
    " FROM pg_stat_user_tables"
    " WHERE quote_ident(schemaname) || '.' || quote_ident(relname) = ANY(%(tables)s)"
    " AND coalesce(greatest(last_analyze, last_autoanalyze), '-infinity')"
    " < (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())"
)
APPLICATION = "opsplay pg_maintenance"
# The current UTC time for the window's end (unit tests replace it: no sleeping).
clock = timestamps.now
THRESHOLD_TYPES = {
    "vacuum_dead_ratio": float,
    "vacuum_min_dead_tuples": int,
    "analyze_mod_ratio": float,
    "analyze_min_modifications": int,
    "reindex_bloat_ratio": float,
    "reindex_min_bytes": int,
}


def thresholds_of(values: dict) -> dict:
    """The thresholds as numbers (ValueError on a missing or non-numeric one)."""
    out = {}
    for name, kind in THRESHOLD_TYPES.items():
        try:
            out[name] = kind(values[name])
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                "threshold %s %r is not a %s" % (name, values.get(name), kind.__name__)
            ) from None
    return out


class Session:
    """One autocommit connection to a database, with the role's timeouts when it acts."""

    def __init__(self, p: dict, dbname: str, timeouts: bool = False):
        self.database = dbname
        self.conn = connect(p["connection"], dbname, APPLICATION)
        if timeouts:
            self.rows(SETTINGS_SQL, {k: p[k] for k in ("lock_timeout", "statement_timeout")})

    def rows(self, sql: str, args: dict | None = None) -> list:
        """The rows ``sql`` returns; PostgresError naming the database when it fails."""
        import psycopg2

        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        except psycopg2.Error as exc:
            raise PostgresError("database %s: %s" % (self.database, error_line(exc))) from exc

    def attempt(self, sql: str) -> str:
        """Run ``sql``; '' when it succeeded, else the error's one line."""
        try:
            self.rows(sql)
        except PostgresError as exc:
            return error_line(exc.__cause__) if exc.__cause__ else str(exc)
        return ""

    def close(self):
        self.conn.close()


def server_facts(p: dict) -> dict:
    """The server's version, databases to maintain, blocked and blocking sessions; PostgresError
    when it does not answer or a database asked for does not exist."""
    session = Session(p, p["maintenance_db"])
    try:
        facts = session.rows(p["queries"]["server"])[0][0]
    finally:
        session.close()
    chosen = plan.choose_databases(facts.pop("catalog"), plan.database_list(p["databases"]))
    if chosen["missing"]:
        raise PostgresError(
            missing_databases(p["connection"], chosen["missing"], chosen["existing"])
        )
    facts["databases"] = chosen["databases"]
    return facts


def inspect(p: dict, database: str, options: dict) -> dict:
    """One database's report with the decisions (one round trip after the slow queries)."""
    session = Session(p, database)
    try:
        session.rows(p["queries"]["slow_queries"], {"top": p["report_top"]})
        facts = session.rows(p["queries"]["inspect"], {"top": p["report_top"]})[0][0]
    finally:
        session.close()
    return plan.plan_database(facts, options)


def vacuum(p: dict, db: dict, failures: list, window: plan.Window | None = None) -> dict:
    """VACUUM the selected tables of one database in one session; what it did. With a window
    end, one table per statement, none started once the window has ended (not_started)."""
    window = window or plan.Window()
    if not db["vacuum"]:
        return plan.vacuum_outcome([], [])
    if window.ended():
        return dict(plan.vacuum_outcome([], []), not_started=[v["name"] for v in db["vacuum"]])
    session = Session(p, db["database"], timeouts=True)
    failed: list = []
    left: list = []
    try:
        for statement in plan.vacuum_statements(db["vacuum"], window.stop is not None):
            if window.ended():
                left += statement["tables"]
                continue
            error = session.attempt(statement["sql"])
            if error:
                failures.append(plan.vacuum_failure(db["database"], statement["tables"], error))
                failed += statement["tables"]
        started = [v for v in db["vacuum"] if v["name"] not in left]
        tables = [v["name"] for v in started]
        skipped = [row[0] for row in session.rows(NOT_VACUUMED_SQL, {"tables": tables})]
    finally:
        session.close()
    outcome = plan.vacuum_outcome(started, skipped, failed)
    return dict(outcome, not_started=left) if left else outcome


def reindex(p: dict, db: dict, failures: list, window: plan.Window | None = None) -> dict:
    """Rebuild the selected indexes of one database one at a time (none started once the
    window has ended: not_started), then drop the invalid leftovers: those found before, and
    those the failed rebuilds left."""
    window = window or plan.Window()
    done = {"reindexed": [], "reindex_failed": [], "dropped_invalid": []}
    if not db["reindex"] and not db["leftovers"]:
        return done
    session = Session(p, db["database"], timeouts=True)
    try:
        for index in db["reindex"]:
            if window.ended():
                done.setdefault("not_started", []).append(index["name"])
                continue
            error = session.attempt(plan.reindex_statement(index["name"])["sql"])
            if error:
                failures.append(plan.reindex_failure(index["name"], error))
                done["reindex_failed"].append(index["name"])
            else:
                done["reindexed"].append(index["name"])
        leftovers = [x["name"] for x in db["leftovers"]]
        if done["reindex_failed"]:
            found = session.rows(p["queries"]["leftovers"])
            keys = ("name", "relname", "table", "valid", "building")
            indexes = [dict(zip(keys, row)) for row in found]
            leftovers += [x["name"] for x in plan.leftovers_of(indexes, db["database"])]
        for name in sorted(set(leftovers), key=leftovers.index):
            error = drop(session, name, p["drop_retries"], p["drop_delay"])
            if error:
                failures.append(plan.drop_failure(name, error))
            else:
                done["dropped_invalid"].append(name)
    finally:
        session.close()
    return done


def drop(session: Session, name: str, retries: int, delay: int) -> str:
    """Drop one invalid index, retrying: the drop waits for the transactions that made its
    rebuild fail. '' when dropped, else the last error."""
    error = ""
    for attempt in range(max(0, retries) + 1):
        if attempt:
            time.sleep(max(0, delay))
        error = session.attempt(plan.drop_statement(name)["sql"])
        if not error:
            return ""
    return error


def run(module: AnsibleModule) -> dict:
    """Inspect, decide, act (unless check mode); the module's result."""
    p = module.params
    check = module.check_mode
    options = {
        "mode": p["mode"],
        "thresholds": thresholds_of(p["thresholds"]),
        "vacuum_full_tables": p["vacuum_full_tables"],
    }
    window = plan.Window(p["stop_at"], clock)
    server = server_facts(p)
    failures: list = []
    databases = []
    for name in server["databases"]:
        db = inspect(p, name, options)
        db["actions"] = plan.no_actions()
        if check and p["action"] in ("vacuum", "reindex") and window.ended():
            db["actions"]["not_started"] = [x["name"] for x in db[p["action"]]]
        elif not check and p["action"] == "vacuum":
            db["actions"].update(vacuum(p, db, failures, window))
        elif not check and p["action"] == "reindex":
            db["actions"].update(reindex(p, db, failures, window))
        databases.append(db)
    not_started = sum(len(db["actions"]["not_started"]) for db in databases)
    acted = any(
        db["actions"][k] for db in databases for k in ("vacuumed", "reindexed", "dropped_invalid")
    )
    header = {
        "action": p["action"],
        "mode": p["mode"],
        "check": check,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "thresholds": options["thresholds"],
        "stop_at": p["stop_at"] or None,
    }
    return {
        "changed": acted,
        "msg": plan.summary(p["action"], p["mode"], check, databases, window.text()),
        "failures": failures,
        "window": {
            "stop_at": p["stop_at"] or None,
            "ended": window.ended_once,
            "not_started": not_started,
        },
        "report": {"host": p["host"], "server": server, "databases": databases},
        "run": header,
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True, "choices": list(plan.ACTIONS)},
            "mode": {"type": "str", "default": "targeted", "choices": list(plan.MODES)},
            "host": {"type": "str", "required": True},
            "connection": CONNECTION_SPEC,
            "maintenance_db": {"type": "str", "default": "postgres"},
            "databases": {"type": "list", "elements": "str", "default": []},
            "thresholds": {"type": "dict", "required": True},
            "vacuum_full_tables": {"type": "list", "elements": "raw", "default": []},
            "lock_timeout": {"type": "str", "default": "5s"},
            "statement_timeout": {"type": "str", "default": "1h"},
            "drop_retries": {"type": "int", "default": 3},
            "drop_delay": {"type": "int", "default": 5},
            "report_top": {"type": "int", "default": 10},
            "queries": {"type": "dict", "required": True},
            "stop_at": {"type": "str", "default": ""},
            "os_user": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    problems = plan.option_problems(
        p["lock_timeout"], p["statement_timeout"], p["vacuum_full_tables"], p["stop_at"]
    )
    try:
        thresholds_of(p["thresholds"])
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        module.fail_json(msg="; ".join(problems), opsplay_bad_input=True)
    result = os_user.module_as_user(
        module, p["os_user"], lambda: run(module), ("psycopg2",), errors=(PostgresError,)
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
