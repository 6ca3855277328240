#!/usr/bin/python3
"""Ansible module: end runaway PostgreSQL sessions (roles/pg_maintenance, tasks_from kill_queries).

Lists the client sessions, chooses those to end (queries active longer than older_than are
cancelled, then terminated after the grace period if they still run the same query; sessions
idle in transaction longer than idle_older_than are terminated), and ends exactly those: a
session is matched by pid, backend start and query (or transaction) start, so a new query that
reused the pid is never touched. Check mode lists only.
"""

from __future__ import annotations

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.postgres import (
    CONNECTION_SPEC,
    PostgresError,
    connect,
    error_line,
)

DURATION = re.compile(r"^([0-9]+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
IDLE_STATES = ("idle in transaction", "idle in transaction (aborted)")

# Every other session, with what the choice needs; `key` identifies the session and its current
# query (active) or transaction (idle) as the actions below match it.
KEY_SQL = (
    "a.pid || ':' || extract(epoch FROM a.backend_start) || ':' || extract(epoch FROM"
    " CASE WHEN a.state = 'active' THEN a.query_start ELSE a.state_change END)"
)
LIST_SQL = (
    "SELECT a.pid, a.usename, a.datname, a.application_name, a.client_addr::text, a.state,"
    " a.backend_type, coalesce(r.rolsuper, false),"
    " extract(epoch FROM clock_timestamp() - CASE WHEN a.state = 'active' THEN a.query_start"
    " ELSE a.state_change END)::float8,"
    " left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200), " + KEY_SQL + " AS key"
    " FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid"
    " WHERE a.pid <> pg_backend_pid()"
)
LIST_KEYS = (
    "pid",
    "usename",
    "datname",
    "application_name",
    "client_addr",
    "state",
    "backend_type",
    "superuser",
    "seconds",
    "query",
    "key",
)
MATCH_SQL = (
    "(a.state = 'active' AND " + KEY_SQL + " = ANY(%(active)s))"
    " OR (a.state IN ('idle in transaction', 'idle in transaction (aborted)')"
    " AND " + KEY_SQL + " = ANY(%(idle)s))"
)
# The signal functions are in the select list, so they run only for the rows the WHERE kept.
CANCEL_SQL = (
    "SELECT a.pid, pg_cancel_backend(a.pid) FROM pg_stat_activity a"
    " WHERE a.state = 'active' AND " + KEY_SQL + " = ANY(%(active)s)"
)
# Waits up to 5 s for each to exit.
TERMINATE_SQL = (
    "SELECT a.pid, pg_terminate_backend(a.pid, 5000) FROM pg_stat_activity a WHERE " + MATCH_SQL
)
SURVIVORS_SQL = "SELECT a.pid FROM pg_stat_activity a WHERE " + MATCH_SQL


def seconds_of(value) -> int | None:
    """A duration (90, 30s, 10m, 1h, 1d) in seconds; None when malformed."""
    m = DURATION.match(str(value).strip())
    return int(m.group(1)) * UNITS[m.group(2)] if m else None


def option_problems(older_than, idle_older_than, grace) -> list:
    """Every bad duration, one message each."""
    problems = []
    for name, value in (
        ("older_than", older_than),
        ("idle_older_than", idle_older_than),
        ("grace", grace),
    ):
        seconds = seconds_of(value)
        if seconds is None:
            problems.append(
                "%s '%s' is not a duration (use e.g. 90, 30s, 10m, 1h, 1d)" % (name, value)
            )
        elif name != "grace" and seconds == 0:
            problems.append("%s '%s' must be more than 0" % (name, value))
    return problems


def action_for(session: dict, limits: dict):
    """'cancel', 'terminate' or None for one session of pg_stat_activity. ``limits``: active
    and idle (seconds), superusers (bool), databases (names; empty: all)."""
    if session["backend_type"] != "client backend":
        return None
    if session["superuser"] and not limits["superusers"]:
        return None
    if limits["databases"] and session["datname"] not in limits["databases"]:
        return None
    age = session["seconds"]
    if age is None:
        return None
    if session["state"] == "active" and age > limits["active"]:
        return "cancel"
    if session["state"] in IDLE_STATES and age > limits["idle"]:
        return "terminate"
    return None


def choose(sessions: list, limits: dict) -> list:
    """The sessions to end, longest first, each with its action and its age rounded."""
    chosen = []
    for s in sessions:
        action = action_for(s, limits)
        if action:
            row = {k: s[k] for k in LIST_KEYS if k not in ("backend_type", "superuser")}
            row.update(action=action, seconds=round(s["seconds"], 1))
            chosen.append(row)
    return sorted(chosen, key=lambda r: (-r["seconds"], r["pid"]))


def listing(chosen: list, limits: dict, check: bool) -> str:
    """One line: each session to end, and the limits."""
    lines = [
        "%s pid %s %s@%s %s for %ss: %s"
        % (s["action"], s["pid"], s["usename"], s["datname"], s["state"], s["seconds"], s["query"])
        for s in chosen
    ]
    return "%s%s (active > %ss, idle in transaction > %ss)" % (
        "would " if check else "",
        " | ".join(lines) if lines else "nothing to end",
        limits["active"],
        limits["idle"],
    )


def outcome(cancelled: list, terminated: list) -> str:
    """One line: the pids cancelled and terminated."""
    return "cancelled pid %s; terminated pid %s" % (
        ", ".join(str(p) for p in cancelled) or "none",
        ", ".join(str(p) for p in terminated) or "none",
    )


def end_sessions(conn, chosen: list, grace: int) -> dict:
    """Cancel the active ones, wait ``grace`` if any was, terminate what still runs its listed
    query and the idle transactions; the pids of each step. One statement per transaction:
    pg_stat_activity is read afresh by each."""
    args = {
        "active": [s["key"] for s in chosen if s["action"] == "cancel"],
        "idle": [s["key"] for s in chosen if s["action"] == "terminate"],
    }
    with conn.cursor() as cur:
        cur.execute(CANCEL_SQL, args)
        cancelled = [row[0] for row in cur.fetchall() if row[1]]
        if args["active"]:
            cur.execute("SELECT pg_sleep(%s)", (grace,))
        cur.execute(TERMINATE_SQL, args)
        terminated = [row[0] for row in cur.fetchall() if row[1]]
        cur.execute(SURVIVORS_SQL, args)
        survivors = [row[0] for row in cur.fetchall()]
    return {"cancelled": cancelled, "terminated": terminated, "survivors": survivors}


def run(module: AnsibleModule, limits: dict) -> dict:
    """List, choose and (unless check mode) end; the module's result."""
    import psycopg2

    p = module.params
    conn = connect(p["connection"], p["maintenance_db"], "opsplay pg_maintenance")
    try:
        with conn.cursor() as cur:
            cur.execute(LIST_SQL)
            sessions = [dict(zip(LIST_KEYS, row)) for row in cur.fetchall()]
        chosen = choose(sessions, limits)
        done = {"cancelled": [], "terminated": [], "survivors": []}
        if chosen and not module.check_mode:
            done = end_sessions(conn, chosen, limits["grace"])
    except psycopg2.Error as exc:
        raise PostgresError(error_line(exc)) from exc
    finally:
        conn.close()
    ended = bool(chosen) and not module.check_mode
    return dict(
        done,
        changed=bool(done["cancelled"] or done["terminated"]),
        sessions=[{k: v for k, v in s.items() if k != "key"} for s in chosen],
        msg=outcome(done["cancelled"], done["terminated"])
        if ended
        else listing(chosen, limits, module.check_mode),
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "connection": CONNECTION_SPEC,
            "maintenance_db": {"type": "str", "default": "postgres"},
            "older_than": {"type": "str", "default": "10m"},
            "idle_older_than": {"type": "str", "default": "30m"},
            "grace": {"type": "str", "default": "10s"},
            "superusers": {"type": "bool", "default": False},
            "databases": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    problems = option_problems(p["older_than"], p["idle_older_than"], p["grace"])
    if problems:
        module.fail_json(msg="; ".join(problems), opsplay_bad_input=True)
    limits = {
        "active": seconds_of(p["older_than"]),
        "idle": seconds_of(p["idle_older_than"]),
        "grace": seconds_of(p["grace"]),
        "superusers": p["superusers"],
        "databases": [d.strip() for d in p["databases"] if d.strip()],
    }
    try:
        result = run(module, limits)
    except PostgresError as exc:
        module.fail_json(msg=str(exc))
    if result["survivors"]:
        result["msg"] = "still running after pg_terminate_backend: pid %s" % ", ".join(
            str(pid) for pid in result["survivors"]
        )
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
