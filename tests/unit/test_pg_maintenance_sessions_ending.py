"""plugins/modules/pg_maintenance_sessions.py ending sessions, main() in this process: which
sessions are cancelled, which terminated after the grace period, which kept, that a session is
matched by its key (a pid reused by a new query is never touched), survivors, check mode.

No PostgreSQL runs here: ``Activity`` models pg_stat_activity behind module_harness's
FakePsycopg2 and answers the module's own statements (LIST/CANCEL/TERMINATE/SURVIVORS_SQL) the
way the server would (a cancelled query ends unless the session ignores it, a terminated
backend goes unless it hangs). molecule/pg_maintenance proves the real server's signals.
"""

from __future__ import annotations

import pytest
from ansible_collections.opsplay.ops.plugins.modules import pg_maintenance_sessions as kill

from .module_harness import FakePsycopg2, run_main
from .test_pg_maintenance_sessions import session

ARGS = {"connection": {"login_user": "ops"}, "older_than": "10m", "idle_older_than": "30m"}


class Activity:
    """pg_stat_activity. ``stubborn``: pids whose query goes on after pg_cancel_backend;
    ``hung``: pids still there after pg_terminate_backend; ``requery``: pids that start a new
    query (a new key) right after the listing."""

    def __init__(self, sessions, stubborn=(), hung=(), requery=()):
        self.sessions = {s["pid"]: dict(s) for s in sessions}
        self.stubborn, self.hung, self.requery = set(stubborn), set(hung), set(requery)
        self.slept = []
        self.pg = FakePsycopg2(self.answer)

    def matching(self, args):
        return [
            s
            for s in self.sessions.values()
            if (s["state"] == "active" and s["key"] in args["active"])
            or (s["state"].startswith("idle in transaction") and s["key"] in args["idle"])
        ]

    def answer(self, dbname, sql, args):
        if sql == kill.LIST_SQL:
            rows = [tuple(s[k] for k in kill.LIST_KEYS) for s in self.sessions.values()]
            for pid in self.requery:
                self.sessions[pid]["key"] = f"{pid}:1:new"
            return rows
        if sql == kill.CANCEL_SQL:
            found = [s for s in self.matching(dict(args, idle=[])) if s["state"] == "active"]
            for s in found:
                if s["pid"] not in self.stubborn:
                    s.update(state="idle", key=f"{s['pid']}:1:idle")
            return [(s["pid"], True) for s in found]
        if sql == "SELECT pg_sleep(%s)":
            self.slept.append(args[0])
            return [(None,)]
        if sql == kill.TERMINATE_SQL:
            found = self.matching(args)
            for s in found:
                if s["pid"] not in self.hung:
                    del self.sessions[s["pid"]]
            return [(s["pid"], True) for s in found]
        if sql == kill.SURVIVORS_SQL:
            return [(s["pid"],) for s in self.matching(args)]
        raise AssertionError("unexpected statement: " + sql)


SESSIONS = [
    session(1, seconds=700.0),  # a long query: cancelled
    session(2, seconds=900.0),  # a long query that ignores the cancel: terminated after grace
    session(3, state="idle in transaction", seconds=2000.0),  # terminated
    session(4, seconds=30.0),  # a short query: kept
    session(5, seconds=5000.0, superuser=True, usename="postgres"),  # a superuser's: kept
    session(6, state="idle", seconds=9000.0),  # idle outside a transaction: kept
]


def test_long_queries_are_cancelled_then_terminated_and_idle_transactions_terminated(monkeypatch):
    activity = Activity(SESSIONS, stubborn={2})
    activity.pg.install(monkeypatch)
    rc, result = run_main(kill, dict(ARGS, grace="15s"))
    assert rc == 0, result
    assert result["cancelled"] == [1, 2]
    assert result["terminated"] == [2, 3]  # 1 ended its query: it stays connected
    assert result["survivors"] == [] and result["changed"] is True
    assert result["msg"] == "cancelled pid 1, 2; terminated pid 2, 3"
    assert activity.slept == [15]
    assert sorted(activity.sessions) == [1, 4, 5, 6]
    assert [(s["pid"], s["action"]) for s in result["sessions"]] == [
        (3, "terminate"),
        (2, "cancel"),
        (1, "cancel"),
    ]
    assert all("key" not in s for s in result["sessions"])
    assert activity.pg.statements() == [
        kill.LIST_SQL,
        kill.CANCEL_SQL,
        "SELECT pg_sleep(%s)",
        kill.TERMINATE_SQL,
        kill.SURVIVORS_SQL,
    ]
    assert all(c.closed for c in activity.pg.connections)


def test_a_pid_that_started_a_new_query_is_not_touched(monkeypatch):
    activity = Activity([session(1, seconds=700.0)], requery={1})
    activity.pg.install(monkeypatch)
    rc, result = run_main(kill, ARGS)
    assert rc == 0, result
    assert result["cancelled"] == [] and result["terminated"] == []
    assert result["changed"] is False
    assert activity.sessions[1]["state"] == "active"


def test_a_backend_still_there_after_terminate_fails_the_module(monkeypatch):
    activity = Activity(SESSIONS, hung={3})
    activity.pg.install(monkeypatch)
    rc, result = run_main(kill, ARGS)
    assert rc == 1
    assert result["msg"] == "still running after pg_terminate_backend: pid 3"
    assert result["survivors"] == [3] and result["terminated"] == [3]


def test_only_idle_transactions_to_end_means_no_grace_wait(monkeypatch):
    activity = Activity([session(3, state="idle in transaction (aborted)", seconds=4000.0)])
    activity.pg.install(monkeypatch)
    rc, result = run_main(kill, ARGS)
    assert rc == 0, result
    assert result["terminated"] == [3] and result["cancelled"] == []
    assert activity.slept == []


def test_check_mode_lists_and_ends_nothing(monkeypatch):
    activity = Activity(SESSIONS)
    activity.pg.install(monkeypatch)
    rc, result = run_main(kill, ARGS, check_mode=True)
    assert rc == 0, result
    assert activity.pg.statements() == [kill.LIST_SQL]
    assert result["changed"] is False and result["cancelled"] == []
    assert result["msg"].startswith(
        "would terminate pid 3 app@shop idle in transaction for 2000.0s"
    )
    assert result["msg"].endswith("(active > 600s, idle in transaction > 1800s)")


@pytest.mark.parametrize("listed", [[], [session(4, seconds=30.0)]])
def test_nothing_to_end_sends_no_signal(monkeypatch, listed):
    activity = Activity(listed)
    activity.pg.install(monkeypatch)
    rc, result = run_main(kill, dict(ARGS, superusers=True))
    assert rc == 0, result
    assert activity.pg.statements() == [kill.LIST_SQL]
    assert result["msg"] == "nothing to end (active > 600s, idle in transaction > 1800s)"


def test_only_the_databases_asked_for(monkeypatch):
    other = session(7, seconds=700.0, datname="reports")
    activity = Activity([session(1, seconds=700.0), other])
    activity.pg.install(monkeypatch)
    rc, result = run_main(kill, dict(ARGS, databases=[" shop ", ""]))  # e.g. -e "shop, "
    assert rc == 0, result
    assert result["cancelled"] == [1]
    assert activity.sessions[7]["state"] == "active"


def test_a_failing_statement_is_one_line_and_closes_the_connection(monkeypatch):
    def broken(dbname, sql, args):
        raise pg.Error("permission denied for view pg_stat_activity\nHINT: grant pg_monitor")

    pg = FakePsycopg2(broken).install(monkeypatch)
    rc, result = run_main(kill, ARGS)
    assert rc == 1 and result["msg"] == "permission denied for view pg_stat_activity"
    assert all(c.closed for c in pg.connections) and len(pg.connections) == 1


def test_an_unreachable_server_is_one_line(monkeypatch):
    FakePsycopg2(lambda *a: None, refuse={"postgres": "timeout expired"}).install(monkeypatch)
    rc, result = run_main(kill, dict(ARGS, connection={"login_host": "db9", "login_port": 6432}))
    assert rc == 1
    assert result["msg"] == "PostgreSQL postgres@db9:6432 is not reachable: timeout expired"
