"""plugins/modules/pg_maintenance_tables.py end to end in this process: the server's facts, one
inspection session per database, the vacuum/reindex sessions with the role's timeouts, the
report, the one-line summary and the failures; and module_utils/postgres.py's connection
messages.

No PostgreSQL runs here and psycopg2 is not installed: ``FakePsycopg2`` (tests/unit/
module_harness.py) answers the role's queries with the facts each test gives and records every
connection and statement. molecule/pg_maintenance proves the real server (locks, SKIP_LOCKED,
REINDEX CONCURRENTLY leftovers).
"""

from __future__ import annotations

import sys

import pytest
from ansible_collections.opsplay.ops.plugins.modules import pg_maintenance_tables as tables

from .module_harness import FakePsycopg2, run_main
from .test_pg_maintenance import THRESHOLDS, index, table

QUERIES = {"server": "SERVER", "slow_queries": "SLOW", "inspect": "INSPECT", "leftovers": "LEFT"}
CATALOG = [
    {"name": "app", "template": False, "allow_connections": True},
    {"name": "shop", "template": False, "allow_connections": True},
    {"name": "template0", "template": True, "allow_connections": False},
    {"name": "template1", "template": True, "allow_connections": True},
    {"name": "frozen", "template": False, "allow_connections": False},
]
LOCK_TIMEOUT = "canceling statement due to lock timeout\nCONTEXT:  while vacuuming public.orders"


class Server:
    """What the role's queries answer. ``facts``: database -> (tables, indexes); ``errors``:
    SQL -> the error it raises (once per listed occurrence)."""

    def __init__(self, facts, errors=None, not_vacuumed=(), leftovers=()):
        self.facts, self.errors = facts, dict(errors or {})
        self.not_vacuumed, self.leftovers = list(not_vacuumed), list(leftovers)
        self.pg = FakePsycopg2(self.answer)

    def answer(self, dbname, sql, args):
        if sql in self.errors:
            raise self.pg.Error(self.errors.pop(sql))
        if sql == "SERVER":
            return [({"version": "PostgreSQL 16.4", "catalog": CATALOG, "blocked": []},)]
        if sql == "INSPECT":
            tabs, idx = self.facts[dbname]
            return [({"database": dbname, "size": 1, "tables": tabs, "indexes": idx},)]
        if sql == tables.NOT_VACUUMED_SQL:
            return [(name,) for name in self.not_vacuumed if name in args["tables"]]
        if sql == "LEFT":
            return self.leftovers
        if sql == tables.SETTINGS_SQL:
            return [(args["lock_timeout"], args["statement_timeout"])]
        return None  # SLOW (a DO block), VACUUM, REINDEX, DROP: no result set


def args(action, **kw):
    base = {
        "action": action,
        "host": "db1",
        "connection": {"login_user": "ops", "login_host": "db1.test"},
        "thresholds": THRESHOLDS,
        "queries": QUERIES,
        "drop_delay": 0,
    }
    return dict(base, **kw)


BLOATED = [table("orders", live=10_000, dead=5_000), table("small", live=10_000, dead=10)]
QUIET = [table("users", live=10_000, dead=1)]


def test_vacuum_selects_per_database_and_acts_in_one_session_with_the_timeouts(monkeypatch):
    server = Server({"app": (BLOATED, []), "shop": (QUIET, [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", lock_timeout="2s", statement_timeout="30min"))
    assert rc == 0, result
    assert result["changed"] is True and result["failures"] == []
    assert (
        result["msg"] == "vacuum (targeted): app: vacuumed public.orders | shop: vacuumed nothing"
    )
    assert server.pg.statements("postgres") == ["SERVER"]
    assert server.pg.statements("app") == [
        "SLOW",  # same session as the inspection: it hands over a session setting
        "INSPECT",
        tables.SETTINGS_SQL,
        "VACUUM (ANALYZE, SKIP_LOCKED) public.orders",
        tables.NOT_VACUUMED_SQL,
    ]
    assert server.pg.statements("shop") == ["SLOW", "INSPECT"]  # nothing to do: no vacuum session
    settings = [e[3] for e in server.pg.log if e[0] == "execute" and e[2] == tables.SETTINGS_SQL]
    assert settings == [{"lock_timeout": "2s", "statement_timeout": "30min"}]
    connects = [e for e in server.pg.log if e[0] == "connect"]
    assert [e[1] for e in connects] == ["postgres", "app", "app", "shop"]
    assert connects[0][2]["application_name"] == "opsplay pg_maintenance"
    assert connects[0][2]["host"] == "db1.test" and connects[0][2]["user"] == "ops"
    assert all(c.closed and c.autocommit for c in server.pg.connections)
    (app, shop) = result["report"]["databases"]
    assert shop["vacuum"] == [] and shop["actions"]["vacuumed"] == []
    assert app["actions"]["vacuumed"] == ["public.orders"]
    assert [v["name"] for v in app["vacuum"]] == ["public.orders"]
    assert app["vacuum"][0]["reason"] == "dead tuples"
    assert result["report"]["server"] == {
        "version": "PostgreSQL 16.4",
        "blocked": [],
        "databases": ["app", "shop"],  # neither a template nor one refusing connections
    }
    assert result["run"]["check"] is False and result["run"]["thresholds"] == THRESHOLDS


def test_check_mode_inspects_and_changes_nothing(monkeypatch):
    server = Server({"app": (BLOATED, []), "shop": (QUIET, [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", mode="full"), check_mode=True)
    assert rc == 0, result
    assert result["changed"] is False
    assert not [s for s in server.pg.statements() if s.startswith(("VACUUM", "SELECT set_config"))]
    assert result["msg"] == (
        "vacuum (full, check): app: would vacuum public.orders, public.small"
        " | shop: would vacuum public.users"
    )


def test_a_failed_vacuum_is_reported_in_one_line_and_the_run_goes_on(monkeypatch):
    server = Server(
        {"app": (BLOATED, []), "shop": ([table("carts", live=100, dead=5_000)], [])},
        errors={"VACUUM (ANALYZE, SKIP_LOCKED) public.orders": LOCK_TIMEOUT},
    )
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", databases=["shop", "app"]))
    assert rc == 0, result
    assert result["failures"] == [
        "VACUUM of public.orders in database app failed: canceling statement due to lock timeout"
    ]
    assert result["msg"] == "vacuum (targeted): app: vacuumed nothing | shop: vacuumed public.carts"
    assert result["changed"] is True


def test_reindex_rebuilds_bloated_indexes_and_drops_leftovers(monkeypatch):
    indexes = [
        index("orders_pkey", bloat=0.6),
        index("orders_small", bytes_=1024, bloat=0.9),  # too small to bother
        index("orders_ccnew", valid=False),  # a leftover of an interrupted rebuild
        index("broken", valid=False),  # invalid, not ours: reported, left alone
    ]
    server = Server(
        {"app": ([], indexes)},
        errors={"REINDEX INDEX CONCURRENTLY public.orders_pkey": "deadlock detected"},
        leftovers=[("public.orders_pkey_ccnew", "orders_pkey_ccnew", "public.t", False, False)],
    )
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("reindex", databases=["app"]))
    assert rc == 0, result
    assert server.pg.statements("app")[2:] == [
        tables.SETTINGS_SQL,
        "REINDEX INDEX CONCURRENTLY public.orders_pkey",
        "LEFT",  # the failed rebuild's own leftover is looked for
        "DROP INDEX CONCURRENTLY IF EXISTS public.orders_ccnew",
        "DROP INDEX CONCURRENTLY IF EXISTS public.orders_pkey_ccnew",
    ]
    (db,) = result["report"]["databases"]
    assert db["invalid_indexes"] == ["public.broken"]
    assert db["actions"]["dropped_invalid"] == ["public.orders_ccnew", "public.orders_pkey_ccnew"]
    assert result["failures"] == [
        "REINDEX INDEX CONCURRENTLY public.orders_pkey failed: deadlock detected"
    ]
    assert result["msg"] == (
        "reindex (targeted): app: rebuilt nothing; dropped invalid public.orders_ccnew,"
        " public.orders_pkey_ccnew"
    )


def test_report_only_reads(monkeypatch):
    server = Server({"app": (BLOATED, [index("orders_pkey", bloat=0.6)]), "shop": (QUIET, [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("report"))
    assert rc == 0, result
    assert result["changed"] is False and result["failures"] == []
    assert server.pg.statements() == ["SERVER", "SLOW", "INSPECT", "SLOW", "INSPECT"]
    assert result["msg"] == (
        "report (targeted): app: 1 tables over the vacuum thresholds, 1 indexes over the bloat"
        " threshold | shop: 0 tables over the vacuum thresholds, 0 indexes over the bloat threshold"
    )


def test_a_database_asked_for_that_does_not_exist_fails_naming_those_that_do(monkeypatch):
    server = Server({})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", databases=["app", "nope", "template0"]))
    assert rc == 1 and "opsplay_bad_input" not in result
    assert result["msg"] == (
        "database nope, template0 does not exist on ops@db1.test:5432 (existing: app, shop)"
    )
    assert server.pg.statements() == ["SERVER"]


def test_a_failing_query_names_the_database_and_the_error_line(monkeypatch):
    server = Server(
        {"app": (BLOATED, [])},
        errors={"INSPECT": 'relation "pg_stat_user_tables" does not exist\nLINE 1: ...'},
    )
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", databases=["app"]))
    assert rc == 1
    assert result["msg"] == 'database app: relation "pg_stat_user_tables" does not exist'
    assert all(c.closed for c in server.pg.connections)


@pytest.mark.parametrize(
    ("refusal", "message"),
    [
        (
            'connection to server at "db1.test", port 5432 failed: Connection refused\n\tIs the'
            " server running on that host and accepting TCP/IP connections?",
            'PostgreSQL ops@db1.test:5432 is not reachable: connection to server at "db1.test",'
            " port 5432 failed: Connection refused Is the server running on that host and"
            " accepting TCP/IP connections?",
        ),
        (
            'connection to server at "db1.test", port 5432 failed: FATAL:  database "postgres"'
            " does not exist",
            "database postgres does not exist on ops@db1.test:5432",
        ),
    ],
)
def test_a_server_that_refuses_is_one_line(monkeypatch, refusal, message):
    pg = FakePsycopg2(lambda *a: None, refuse={"postgres": refusal}).install(monkeypatch)
    rc, result = run_main(tables, args("vacuum"))
    assert rc == 1 and result["msg"] == message
    assert pg.statements() == []


def test_without_psycopg2_the_module_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    rc, result = run_main(tables, args("report"))
    assert rc == 1 and result["msg"] == "python3-psycopg2 is missing on the host"


def test_a_threshold_that_is_not_a_number_is_bad_input(monkeypatch):
    pg = FakePsycopg2(lambda *a: None).install(monkeypatch)
    thresholds = dict(THRESHOLDS, vacuum_dead_ratio="lots")
    del thresholds["reindex_min_bytes"]
    rc, result = run_main(tables, args("vacuum", thresholds=thresholds))
    assert rc == 1 and result["opsplay_bad_input"] is True
    assert result["msg"] == "threshold vacuum_dead_ratio 'lots' is not a float"
    assert pg.log == []  # refused before connecting
    with pytest.raises(ValueError, match="threshold reindex_min_bytes None is not a int"):
        tables.thresholds_of(dict(THRESHOLDS, reindex_min_bytes=None))
