"""pg_maintenance's decisions without a server: options, databases, what to vacuum (and FULL),
what to rebuild, which invalid indexes to drop, the statements and their locks, the report rows
and messages (plugins/module_utils/pg_maintenance.py, plugins/modules/pg_maintenance_tables.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import pg_maintenance as plan
from ansible_collections.opsplay.ops.plugins.modules import pg_maintenance_tables as tables

THRESHOLDS = {
    "vacuum_dead_ratio": 0.1,
    "vacuum_min_dead_tuples": 1000,
    "analyze_mod_ratio": 0.1,
    "analyze_min_modifications": 1000,
    "reindex_bloat_ratio": 0.3,
    "reindex_min_bytes": 1048576,
}
MODULES = Path(__file__).parents[2] / "plugins" / "modules"
COLLECTIONS = Path(__file__).parents[2] / "collections"


def table(name, live=100_000, dead=0, mods=0):
    return {
        "name": "public." + name,
        "plain_name": "public." + name,
        "n_live_tup": live,
        "n_dead_tup": dead,
        "n_mod_since_analyze": mods,
        "dead_ratio": round(dead / max(live + dead, 1), 4),
        "mod_ratio": round(mods / max(live, 1), 4),
    }


def index(name, bytes_=8 << 20, bloat=0.5, valid=True, building=False):
    return {
        "name": "public." + name,
        "relname": name,
        "table": "public.t",
        "bytes": bytes_,
        "bloat_ratio": bloat,
        "valid": valid,
        "building": building,
    }


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["5s", "500ms", "1min", "1h", "0", "2 s", "10us", "1d"])
def test_postgresql_times_are_accepted(value):
    assert plan.option_problems(value, value, []) == []


def test_every_bad_option_is_named_once_in_its_own_message():
    problems = plan.option_problems("5 seconds", "1x", [{"database": "app"}, "audit", {}])
    assert problems == [
        "pg_maintenance_lock_timeout '5 seconds' is not a PostgreSQL time"
        " (e.g. 5s, 500ms, 1min, 1h)",
        "pg_maintenance_statement_timeout '1x' is not a PostgreSQL time (e.g. 5s, 500ms, 1min, 1h)",
        'pg_maintenance_vacuum_full_tables item {"database": "app"} needs database and table'
        " (schema.table)",
        'pg_maintenance_vacuum_full_tables item "audit" needs database and table (schema.table)',
        "pg_maintenance_vacuum_full_tables item {} needs database and table (schema.table)",
    ]


@pytest.mark.parametrize("name", ["audit", "a.b.c", ".audit", "public."])
def test_vacuum_full_tables_need_schema_dot_table(name):
    assert plan.option_problems("5s", "1h", [{"database": "app", "table": name}])


def test_thresholds_that_are_not_numbers_are_refused_naming_them():
    with pytest.raises(ValueError, match="threshold vacuum_dead_ratio 'lots' is not a float"):
        tables.thresholds_of(dict(THRESHOLDS, vacuum_dead_ratio="lots"))
    assert tables.thresholds_of({k: str(v) for k, v in THRESHOLDS.items()}) == THRESHOLDS


# --- databases ---------------------------------------------------------------------------------

CATALOG = [
    {"name": "app", "template": False, "allow_connections": True},
    {"name": "postgres", "template": False, "allow_connections": True},
    {"name": "template0", "template": True, "allow_connections": False},
    {"name": "template1", "template": True, "allow_connections": True},
    {"name": "closed", "template": False, "allow_connections": False},
]


def test_no_database_asked_means_every_connectable_non_template_one():
    chosen = plan.choose_databases(CATALOG, [])
    assert chosen == {
        "databases": ["app", "postgres"],
        "existing": ["app", "postgres"],
        "missing": [],
    }


def test_databases_asked_for_that_do_not_exist_or_refuse_connections_are_missing():
    chosen = plan.choose_databases(CATALOG, ["postgres", "nope", "closed", "app"])
    assert chosen["databases"] == ["app", "postgres"]
    assert chosen["missing"] == ["nope", "closed"]


def test_databases_from_the_command_line_are_a_comma_list():
    assert plan.database_list("app, shop,,") == ["app", "shop"]
    assert plan.database_list(["app", " shop "]) == ["app", "shop"]
    assert plan.database_list([]) == []


# --- vacuum selection ----------------------------------------------------------------------------


def test_a_table_is_vacuumed_for_dead_tuples_only_over_both_thresholds():
    many_but_few = table("big", live=1_000_000, dead=50_000)  # 4.8 %: under the ratio
    few_but_high = table("small", live=100, dead=900)  # 90 % but 900 < 1000
    over = table("bloated", live=5_000, dead=5_000)
    chosen = plan.select_vacuum([many_but_few, few_but_high, over], THRESHOLDS, False, set())
    assert [(v["name"], v["reason"]) for v in chosen] == [("public.bloated", "dead tuples")]


def test_a_table_modified_since_analyze_is_vacuumed_and_analyzed():
    chosen = plan.select_vacuum([table("churn", live=10_000, mods=2_000)], THRESHOLDS, False, set())
    assert chosen[0]["reason"] == "modified since analyze"
    assert (
        plan.select_vacuum([table("calm", live=10_000, mods=999)], THRESHOLDS, False, set()) == []
    )


def test_thresholds_are_inclusive():
    exact = table("exact", live=9_000, dead=1_000)  # ratio 0.1, 1000 dead
    assert plan.select_vacuum([exact], THRESHOLDS, False, set())[0]["reason"] == "dead tuples"


def test_full_mode_takes_every_table_keeping_the_real_reason_first():
    clean, bloated = table("clean"), table("bloated", live=5_000, dead=5_000)
    chosen = plan.select_vacuum([clean, bloated], THRESHOLDS, True, set())
    assert [(v["name"], v["reason"]) for v in chosen] == [
        ("public.bloated", "dead tuples"),
        ("public.clean", "full mode"),
    ]


def test_most_dead_tuples_first_then_by_name():
    rows = [table("b", dead=20_000), table("a", dead=20_000), table("c", dead=90_000)]
    chosen = plan.select_vacuum(rows, THRESHOLDS, False, set())
    assert [v["name"] for v in chosen] == ["public.c", "public.a", "public.b"]


def test_vacuum_full_only_for_listed_tables_of_that_database():
    rows = [table("audit", dead=90_000), table("orders", dead=90_000)]
    full = plan.full_tables_of(
        [
            {"database": "app", "table": "public.audit"},
            {"database": "other", "table": "public.orders"},
        ],
        "app",
    )
    chosen = plan.select_vacuum(rows, THRESHOLDS, False, full)
    assert {v["name"]: v["vacuum_full"] for v in chosen} == {
        "public.audit": True,
        "public.orders": False,
    }
    statements = plan.vacuum_statements(chosen)
    assert [(s["sql"], s["lock"], s["tables"]) for s in statements] == [
        (
            "VACUUM (ANALYZE, SKIP_LOCKED) public.orders",
            "SHARE UPDATE EXCLUSIVE",
            ["public.orders"],
        ),
        ("VACUUM (FULL, ANALYZE, SKIP_LOCKED) public.audit", "ACCESS EXCLUSIVE", ["public.audit"]),
    ]


def test_a_listed_table_not_over_the_thresholds_is_not_vacuumed_full():
    full = {"public.audit"}
    assert plan.select_vacuum([table("audit")], THRESHOLDS, False, full) == []


def test_plain_tables_go_in_one_statement_with_quoted_names_kept():
    chosen = [
        {"name": 'public."Odd %Name"', "vacuum_full": False},
        {"name": "public.b", "vacuum_full": False},
    ]
    assert [s["sql"] for s in plan.vacuum_statements(chosen)] == [
        'VACUUM (ANALYZE, SKIP_LOCKED) public."Odd %Name", public.b'
    ]
    assert plan.vacuum_statements([]) == []


def test_tables_skipped_by_skip_locked_are_reported_apart():
    chosen = [{"name": "public.a"}, {"name": "public.b"}, {"name": "public.c"}]
    outcome = plan.vacuum_outcome(chosen, ["public.b", "public.unrelated"])
    assert outcome == {"vacuumed": ["public.a", "public.c"], "vacuum_skipped_locked": ["public.b"]}


# --- reindex choice ------------------------------------------------------------------------------


def test_an_index_is_rebuilt_over_both_the_bloat_ratio_and_the_size():
    rows = [
        index("bloated", bloat=0.6),
        index("small", bytes_=8192, bloat=0.9),
        index("tight", bloat=0.1),
        index("exact", bytes_=1048576, bloat=0.3),
        index("gin", bloat=None),  # no estimate (not btree): never in targeted mode
    ]
    chosen = plan.select_reindex(rows, THRESHOLDS, False)
    assert [x["name"] for x in chosen] == ["public.bloated", "public.exact"]
    assert set(chosen[0]) == {"name", "table", "bytes", "bloat_ratio"}


def test_full_mode_rebuilds_every_valid_index_but_never_invalid_or_transient_ones():
    rows = [
        index("gin", bloat=None, bytes_=1),
        index("broken", valid=False),
        index("t_id_ccnew", valid=True),
        index("ok", bytes_=10),
    ]
    chosen = plan.select_reindex(rows, THRESHOLDS, True)
    assert [x["name"] for x in chosen] == ["public.ok", "public.gin"]


def test_rebuilds_are_concurrent_one_index_per_statement():
    statement = plan.reindex_statement("public.idx")
    assert statement == {
        "sql": "REINDEX INDEX CONCURRENTLY public.idx",
        "lock": "SHARE UPDATE EXCLUSIVE",
    }
    assert plan.drop_statement("public.idx_ccnew")["sql"] == (
        "DROP INDEX CONCURRENTLY IF EXISTS public.idx_ccnew"
    )


def test_leftovers_are_invalid_transient_indexes_no_build_is_making():
    rows = [
        index("a_ccnew", valid=False),
        index("a_ccold2", valid=False),
        index("b_ccnew", valid=False, building=True),  # a running REINDEX CONCURRENTLY's
        index("c_ccnew", valid=True),
        index("broken", valid=False),  # a failed CREATE INDEX CONCURRENTLY: left alone
    ]
    leftovers = plan.leftovers_of(rows, "app")
    assert leftovers == [
        {"database": "app", "name": "public.a_ccnew", "table": "public.t"},
        {"database": "app", "name": "public.a_ccold2", "table": "public.t"},
    ]


def test_a_database_report_gets_the_decisions_and_loses_the_raw_statistics():
    facts = {
        "database": "app",
        "size_bytes": 1,
        "tables": [table("bloated", live=5_000, dead=5_000), table("clean")],
        "indexes": [index("idx"), index("idx_ccnew", valid=False), index("broken", valid=False)],
        "largest_tables": [],
    }
    options = {"mode": "targeted", "thresholds": THRESHOLDS, "vacuum_full_tables": []}
    report = plan.plan_database(facts, options)
    assert "tables" not in report and "indexes" not in report
    assert [v["name"] for v in report["vacuum"]] == ["public.bloated"]
    assert [x["name"] for x in report["reindex"]] == ["public.idx"]
    assert [x["name"] for x in report["leftovers"]] == ["public.idx_ccnew"]
    assert report["invalid_indexes"] == ["public.broken"]
    assert report["largest_tables"] == [] and report["size_bytes"] == 1


# --- messages ------------------------------------------------------------------------------------


def db(name, vacuum=(), reindex=(), leftovers=(), **actions):
    return {
        "database": name,
        "vacuum": [{"name": n} for n in vacuum],
        "reindex": [{"name": n} for n in reindex],
        "leftovers": [{"name": n} for n in leftovers],
        "actions": dict(plan.no_actions(), **actions),
    }


def test_vacuum_summary_says_what_was_done_and_what_was_skipped_locked():
    dbs = [
        db(
            "app",
            vacuum=["public.a", "public.b"],
            vacuumed=["public.a"],
            vacuum_skipped_locked=["public.b"],
        ),
        db("postgres"),
    ]
    assert plan.summary("vacuum", "targeted", False, dbs) == (
        "vacuum (targeted): app: vacuumed public.a; skipped (locked) public.b"
        " | postgres: vacuumed nothing"
    )


def test_check_mode_summary_says_what_would_be_done():
    dbs = [db("app", vacuum=["public.a"], reindex=["public.i"], leftovers=["public.i_ccnew"])]
    assert plan.summary("vacuum", "full", True, dbs) == (
        "vacuum (full, check): app: would vacuum public.a"
    )
    assert plan.summary("reindex", "targeted", True, dbs) == (
        "reindex (targeted, check): app: would rebuild public.i; would drop invalid public.i_ccnew"
    )


def test_reindex_and_report_summaries():
    dbs = [
        db(
            "app",
            vacuum=["public.a"],
            reindex=["public.i", "public.j"],
            reindexed=["public.i"],
            dropped_invalid=["public.j_ccnew"],
        )
    ]
    assert plan.summary("reindex", "targeted", False, dbs) == (
        "reindex (targeted): app: rebuilt public.i; dropped invalid public.j_ccnew"
    )
    assert plan.summary("report", "targeted", False, dbs) == (
        "report (targeted): app: 1 tables over the vacuum thresholds,"
        " 2 indexes over the bloat threshold"
    )


def test_failure_messages_name_the_index_and_the_error():
    assert plan.reindex_failure("public.locked_id", "canceling statement due to lock timeout") == (
        "REINDEX INDEX CONCURRENTLY public.locked_id failed:"
        " canceling statement due to lock timeout"
    )
    assert plan.drop_failure("public.x_ccnew", "lock timeout").startswith(
        "DROP INDEX CONCURRENTLY public.x_ccnew failed, the next run retries: "
    )


# --- the module refuses bad input in one line -----------------------------------------------------


def run_module(name, args):
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [sys.executable, str(MODULES / (name + ".py"))],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return json.loads(proc.stdout), proc


def test_the_module_refuses_bad_options_before_connecting():
    args = {
        "action": "vacuum",
        "host": "db1",
        # nothing listens here: a refusal must come before any connection
        "connection": {"login_host": "127.0.0.1", "login_port": 1},
        "thresholds": THRESHOLDS,
        "queries": {},
        "lock_timeout": "soon",
        "vacuum_full_tables": [{"database": "app", "table": "audit"}],
    }
    result, proc = run_module("pg_maintenance_tables", args)
    assert result["failed"] and result["opsplay_bad_input"] is True
    assert result["msg"] == (
        "pg_maintenance_lock_timeout 'soon' is not a PostgreSQL time (e.g. 5s, 500ms, 1min, 1h); "
        'pg_maintenance_vacuum_full_tables item {"database": "app", "table": "audit"} needs'
        " database and table (schema.table)"
    )
    assert "Traceback" not in proc.stderr


def test_a_server_that_does_not_answer_fails_in_one_line_and_is_not_bad_input():
    args = {
        "action": "report",
        "host": "db1",
        "connection": {"login_host": "127.0.0.1", "login_port": 1, "login_user": "ops"},
        "thresholds": THRESHOLDS,
        "queries": {"server": "SELECT 1"},
    }
    result, _ = run_module("pg_maintenance_tables", args)
    assert result["failed"] and "opsplay_bad_input" not in result
    try:
        import psycopg2  # noqa: F401
    except ImportError:  # this interpreter lacks it (the hosts have it): that is said in one line
        assert result["msg"] == "python3-psycopg2 is missing on the host"
    else:
        assert result["msg"].startswith("PostgreSQL ops@127.0.0.1:1 is not reachable: ")
    assert "\n" not in result["msg"]


# --- the order of work on one database (a scripted stand-in for the server's answers) ---------


class Script:
    """Stands in for tables.Session: records each statement, fails those in ``fails`` (a
    statement -> how many times it fails), answers the leftovers and not-vacuumed queries."""

    def __init__(self, fails=None, leftovers=(), not_vacuumed=()):
        self.fails = dict(fails or {})
        self.leftovers = list(leftovers)
        self.not_vacuumed = list(not_vacuumed)
        self.log = []

    def __call__(self, p, dbname, timeouts=False):
        self.log.append(("connect", dbname, timeouts))
        return self

    def rows(self, sql, args=None):
        self.log.append(sql)
        if sql == "LEFTOVERS":
            return self.leftovers
        if sql == tables.NOT_VACUUMED_SQL:
            return [(name,) for name in self.not_vacuumed]
        return []

    def attempt(self, sql):
        self.log.append(sql)
        if self.fails.get(sql):
            self.fails[sql] -= 1
            return "canceling statement due to lock timeout"
        return ""

    def close(self):
        self.log.append("close")


PARAMS = {"queries": {"leftovers": "LEFTOVERS"}, "drop_retries": 2, "drop_delay": 0}


def test_a_failed_rebuild_does_not_stop_the_others_and_its_leftover_is_dropped(monkeypatch):
    script = Script(
        fails={"REINDEX INDEX CONCURRENTLY public.a": 1},
        leftovers=[("public.a_ccnew", "a_ccnew", "public.t", False, False)],
    )
    monkeypatch.setattr(tables, "Session", script)
    db = {
        "database": "app",
        "reindex": [{"name": "public.a"}, {"name": "public.b"}],
        "leftovers": [{"name": "public.old_ccold"}],
    }
    failures = []
    done = tables.reindex(PARAMS, db, failures)
    assert done == {
        "reindexed": ["public.b"],
        "reindex_failed": ["public.a"],
        "dropped_invalid": ["public.old_ccold", "public.a_ccnew"],
    }
    assert failures == [
        "REINDEX INDEX CONCURRENTLY public.a failed: canceling statement due to lock timeout"
    ]
    assert script.log == [
        ("connect", "app", True),
        "REINDEX INDEX CONCURRENTLY public.a",
        "REINDEX INDEX CONCURRENTLY public.b",
        "LEFTOVERS",
        "DROP INDEX CONCURRENTLY IF EXISTS public.old_ccold",
        "DROP INDEX CONCURRENTLY IF EXISTS public.a_ccnew",
        "close",
    ]


def test_a_drop_is_retried_then_reported_for_the_next_run(monkeypatch):
    drop = "DROP INDEX CONCURRENTLY IF EXISTS public.x_ccnew"
    script = Script(fails={drop: 5})
    monkeypatch.setattr(tables, "Session", script)
    db = {"database": "app", "reindex": [], "leftovers": [{"name": "public.x_ccnew"}]}
    failures = []
    assert tables.reindex(PARAMS, db, failures)["dropped_invalid"] == []
    assert script.log.count(drop) == 3  # drop_retries 2: three attempts
    assert failures == [
        "DROP INDEX CONCURRENTLY public.x_ccnew failed, the next run retries:"
        " canceling statement due to lock timeout"
    ]
    script = Script(fails={drop: 1})
    monkeypatch.setattr(tables, "Session", script)
    assert tables.reindex(PARAMS, db, [])["dropped_invalid"] == ["public.x_ccnew"]


def test_nothing_to_rebuild_or_drop_opens_no_session(monkeypatch):
    script = Script()
    monkeypatch.setattr(tables, "Session", script)
    empty = {"database": "app", "reindex": [], "leftovers": [], "vacuum": []}
    assert tables.reindex(PARAMS, empty, []) == {
        "reindexed": [],
        "reindex_failed": [],
        "dropped_invalid": [],
    }
    assert tables.vacuum(PARAMS, empty, []) == {"vacuumed": [], "vacuum_skipped_locked": []}
    assert script.log == []


def test_vacuum_runs_one_session_and_reports_the_tables_skip_locked_skipped(monkeypatch):
    script = Script(not_vacuumed=["public.b"])
    monkeypatch.setattr(tables, "Session", script)
    db = {
        "database": "app",
        "vacuum": [
            {"name": "public.a", "vacuum_full": False},
            {"name": "public.b", "vacuum_full": False},
            {"name": "public.audit", "vacuum_full": True},
        ],
    }
    failures = []
    assert tables.vacuum(PARAMS, db, failures) == {
        "vacuumed": ["public.a", "public.audit"],
        "vacuum_skipped_locked": ["public.b"],
    }
    assert script.log == [
        ("connect", "app", True),
        "VACUUM (ANALYZE, SKIP_LOCKED) public.a, public.b",
        "VACUUM (FULL, ANALYZE, SKIP_LOCKED) public.audit",
        tables.NOT_VACUUMED_SQL,
        "close",
    ]
    assert failures == []


def test_a_failed_vacuum_is_a_failure_naming_its_tables_not_a_skip(monkeypatch):
    full = "VACUUM (FULL, ANALYZE, SKIP_LOCKED) public.audit"
    # the failed table was not analyzed either: the not-vacuumed query lists it too
    script = Script(fails={full: 1}, not_vacuumed=["public.audit"])
    monkeypatch.setattr(tables, "Session", script)
    db = {
        "database": "app",
        "vacuum": [
            {"name": "public.a", "vacuum_full": False},
            {"name": "public.audit", "vacuum_full": True},
        ],
    }
    failures = []
    assert tables.vacuum(PARAMS, db, failures) == {
        "vacuumed": ["public.a"],
        "vacuum_skipped_locked": [],
    }
    assert failures == [
        "VACUUM of public.audit in database app failed: canceling statement due to lock timeout"
    ]
