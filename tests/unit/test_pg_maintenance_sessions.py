"""kill-long-queries' decisions without a server: durations, which sessions are cancelled and
which terminated, which are never touched, and the messages
(plugins/modules/pg_maintenance_sessions.py)."""

from __future__ import annotations

import pytest
from ansible_collections.opsplay.ops.plugins.modules import pg_maintenance_sessions as kill

from .test_pg_maintenance import run_module

LIMITS = {"active": 600, "idle": 1800, "grace": 10, "superusers": False, "databases": []}


def session(pid, state="active", seconds=700.0, **over):
    row = {
        "pid": pid,
        "usename": "app",
        "datname": "shop",
        "application_name": "web",
        "client_addr": "10.0.0.5",
        "state": state,
        "backend_type": "client backend",
        "superuser": False,
        "seconds": seconds,
        "query": "SELECT pg_sleep(900)",
        "key": f"{pid}:1:2",
    }
    row.update(over)
    return row


@pytest.mark.parametrize(
    "value, seconds",
    [("90", 90), ("30s", 30), ("10m", 600), ("1h", 3600), ("1d", 86400), (" 5m ", 300), (0, 0)],
)
def test_durations(value, seconds):
    assert kill.seconds_of(value) == seconds


@pytest.mark.parametrize("value", ["10 m", "1w", "-5", "1.5h", "", "m"])
def test_malformed_durations(value):
    assert kill.seconds_of(value) is None


def test_every_bad_duration_is_named_and_zero_is_refused_except_for_grace():
    assert kill.option_problems("0", "1w", "0") == [
        "older_than '0' must be more than 0",
        "idle_older_than '1w' is not a duration (use e.g. 90, 30s, 10m, 1h, 1d)",
    ]
    assert kill.option_problems("10m", "30m", "10s") == []


def test_long_queries_are_cancelled_long_idle_transactions_terminated():
    rows = [
        session(1, seconds=601),
        session(2, seconds=600),  # not longer than older_than
        session(3, state="idle in transaction", seconds=1801),
        session(4, state="idle in transaction (aborted)", seconds=5000),
        session(5, state="idle in transaction", seconds=1700),
        session(6, state="idle", seconds=90000),  # idle outside a transaction: harmless
    ]
    chosen = kill.choose(rows, LIMITS)
    assert [(s["pid"], s["action"]) for s in chosen] == [
        (4, "terminate"),
        (3, "terminate"),
        (1, "cancel"),
    ]


def test_background_processes_superusers_and_other_databases_are_never_touched():
    rows = [
        session(1, backend_type="walsender"),
        session(2, backend_type="autovacuum worker"),
        session(3, backend_type="background worker"),
        session(4, superuser=True, usename="postgres"),
        session(5, datname="other"),
        session(6),
    ]
    limits = dict(LIMITS, databases=["shop"])
    assert [s["pid"] for s in kill.choose(rows, limits)] == [6]
    with_superusers = dict(limits, superusers=True)
    assert [s["pid"] for s in kill.choose(rows, with_superusers)] == [4, 6]
    assert [s["pid"] for s in kill.choose(rows, LIMITS)] == [5, 6]


def test_a_session_without_a_start_time_is_left_alone():
    assert kill.choose([session(1, seconds=None)], LIMITS) == []


def test_the_listing_names_each_session_and_the_limits():
    chosen = kill.choose(
        [session(7, seconds=700.04), session(8, "idle in transaction", 2000)], LIMITS
    )
    text = kill.listing(chosen, LIMITS, check=True)
    assert text == (
        "would terminate pid 8 app@shop idle in transaction for 2000s: SELECT pg_sleep(900)"
        " | cancel pid 7 app@shop active for 700.0s: SELECT pg_sleep(900)"
        " (active > 600s, idle in transaction > 1800s)"
    )
    assert kill.listing([], LIMITS, check=False) == (
        "nothing to end (active > 600s, idle in transaction > 1800s)"
    )
    assert "key" in chosen[0]  # what the actions match on, dropped from the module's result


def test_the_outcome_names_the_pids():
    assert kill.outcome([7], [8, 7]) == "cancelled pid 7; terminated pid 8, 7"
    assert kill.outcome([], []) == "cancelled pid none; terminated pid none"


def test_the_module_refuses_bad_durations_before_connecting():
    args = {
        "connection": {"login_host": "127.0.0.1", "login_port": 1},
        "older_than": "ten minutes",
    }
    result, proc = run_module("pg_maintenance_sessions", args)
    assert result["failed"] and result["opsplay_bad_input"] is True
    assert result["msg"] == (
        "older_than 'ten minutes' is not a duration (use e.g. 90, 30s, 10m, 1h, 1d)"
    )
    assert "Traceback" not in proc.stderr
