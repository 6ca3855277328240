"""pg_maintenance_stop_at (issue 22 item 3, "a window ends on time"): no VACUUM or REINDEX of a
further object starts at or after the window's end; what was done is reported, the rest listed
as not started because the window ended. The clock is passed in (``tables.clock``): no sleeping.

molecule/pg_maintenance proves it on the real server (last_vacuum and relfilenode unchanged).
"""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import pg_maintenance as plan
from ansible_collections.opsplay.ops.plugins.module_utils import pg_maintenance_report as report
from ansible_collections.opsplay.ops.plugins.modules import pg_maintenance_tables as tables

from .module_harness import run_main
from .test_pg_maintenance import index, table
from .test_pg_maintenance_tables_run import Server, args

STOP = "2026-12-07T03:00:00Z"
END = datetime.datetime(2026, 12, 7, 3, 0, 0, tzinfo=datetime.UTC)
ENDED = "not started, the window ended at 2026-12-07 03:00:00 (UTC)"
THREE = [
    table("orders", live=10_000, dead=9_000),
    table("carts", live=10_000, dead=8_000),
    table("users", live=10_000, dead=7_000),
]


class Clock:
    """The current time as a run sees it: ``before`` calls before the end, then the end itself
    (at or after it nothing new starts)."""

    def __init__(self, before: int):
        self.before = before
        self.calls = 0

    def __call__(self) -> datetime.datetime:
        self.calls += 1
        if self.calls <= self.before:
            return END - datetime.timedelta(seconds=1)
        return END


def vacuums(server) -> list:
    return [s for s in server.pg.statements() if s.startswith("VACUUM")]


def test_no_stop_at_never_ends_and_keeps_one_vacuum_statement(monkeypatch):
    window = plan.Window("")
    assert window.stop is None and window.ended() is False and window.text() == ""
    server = Server({"app": (THREE, [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", databases=["app"]))
    assert rc == 0, result
    assert vacuums(server) == [
        "VACUUM (ANALYZE, SKIP_LOCKED) public.orders, public.carts, public.users"
    ]
    assert result["window"] == {"stop_at": None, "ended": False, "not_started": 0}


@pytest.mark.parametrize("bad", ["tomorrow", "2026-12-07 03:00", "2026-12-07T03:00:00+01:00"])
def test_a_stop_at_that_is_not_iso_utc_is_bad_input_in_one_line(monkeypatch, bad):
    server = Server({"app": (THREE, [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", stop_at=bad))
    assert rc == 1 and result["opsplay_bad_input"] is True
    assert result["msg"] == (
        f"pg_maintenance_stop_at {bad!r} is not a UTC time like 2026-12-07T03:00:00Z"
    )
    assert server.pg.log == []  # refused before connecting


def test_a_window_already_ended_starts_no_vacuum_and_lists_every_table(monkeypatch):
    monkeypatch.setattr(tables, "clock", Clock(before=0))
    server = Server({"app": (THREE, [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", databases=["app"], stop_at=STOP))
    assert rc == 0, result
    assert vacuums(server) == []
    assert [c for c in server.pg.log if c[0] == "connect"][-1][1] == "app"  # inspected only
    assert result["changed"] is False and result["failures"] == []
    assert result["msg"] == (
        "vacuum (targeted): app: vacuumed nothing; "
        f"{ENDED}: public.orders, public.carts, public.users"
    )
    assert result["window"] == {"stop_at": STOP, "ended": True, "not_started": 3}
    assert result["run"]["stop_at"] == STOP


def test_the_window_ends_between_two_tables_what_was_done_is_reported(monkeypatch):
    # Checked before the session opens (1), before orders (2), before carts (3: the end).
    monkeypatch.setattr(tables, "clock", Clock(before=2))
    server = Server({"app": (THREE, [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", databases=["app"], stop_at=STOP))
    assert rc == 0, result
    assert vacuums(server) == ["VACUUM (ANALYZE, SKIP_LOCKED) public.orders"]
    (db,) = result["report"]["databases"]
    assert db["actions"]["vacuumed"] == ["public.orders"]
    assert db["actions"]["not_started"] == ["public.carts", "public.users"]
    assert result["changed"] is True
    assert result["msg"] == (
        f"vacuum (targeted): app: vacuumed public.orders; {ENDED}: public.carts, public.users"
    )


def test_a_window_ending_in_the_future_changes_nothing_but_one_table_per_statement(monkeypatch):
    monkeypatch.setattr(tables, "clock", Clock(before=1000))
    server = Server({"app": (THREE, []), "shop": ([table("a", live=10, dead=5_000)], [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", stop_at=STOP))
    assert rc == 0, result
    assert vacuums(server) == [
        "VACUUM (ANALYZE, SKIP_LOCKED) public.orders",
        "VACUUM (ANALYZE, SKIP_LOCKED) public.carts",
        "VACUUM (ANALYZE, SKIP_LOCKED) public.users",
        "VACUUM (ANALYZE, SKIP_LOCKED) public.a",
    ]
    assert result["msg"] == (
        "vacuum (targeted): app: vacuumed public.orders, public.carts, public.users"
        " | shop: vacuumed public.a"
    )
    assert result["window"] == {"stop_at": STOP, "ended": False, "not_started": 0}


def test_a_later_database_is_not_started_once_the_window_ended_in_an_earlier_one(monkeypatch):
    monkeypatch.setattr(tables, "clock", Clock(before=2))
    server = Server({"app": (THREE[:1], []), "shop": ([table("a", live=10, dead=5_000)], [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", stop_at=STOP))
    assert rc == 0, result
    assert vacuums(server) == ["VACUUM (ANALYZE, SKIP_LOCKED) public.orders"]
    assert server.pg.statements("shop") == ["SLOW", "INSPECT"]  # no vacuum session opened
    assert result["msg"] == (
        "vacuum (targeted): app: vacuumed public.orders | shop: vacuumed nothing; "
        f"{ENDED}: public.a"
    )


def test_the_window_ends_after_the_first_rebuild_leftovers_are_still_dropped(monkeypatch):
    monkeypatch.setattr(tables, "clock", Clock(before=1))
    indexes = [
        index("big", bytes_=64 << 20, bloat=0.6),
        index("middle", bytes_=32 << 20, bloat=0.6),
        index("orders_ccnew", valid=False),
    ]
    server = Server({"app": ([], indexes)})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("reindex", databases=["app"], stop_at=STOP))
    assert rc == 0, result
    assert server.pg.statements("app")[2:] == [
        tables.SETTINGS_SQL,
        "REINDEX INDEX CONCURRENTLY public.big",
        "DROP INDEX CONCURRENTLY IF EXISTS public.orders_ccnew",
    ]
    assert result["msg"] == (
        "reindex (targeted): app: rebuilt public.big; dropped invalid public.orders_ccnew; "
        f"{ENDED}: public.middle"
    )
    assert result["window"]["not_started"] == 1


def test_check_mode_after_the_end_says_nothing_would_start(monkeypatch):
    monkeypatch.setattr(tables, "clock", Clock(before=0))
    server = Server({"app": (THREE[:2], [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", databases=["app"], stop_at=STOP), check_mode=True)
    assert rc == 0, result
    assert vacuums(server) == []
    assert result["msg"] == (
        f"vacuum (targeted, check): app: would vacuum nothing; {ENDED}: public.orders, public.carts"
    )


def test_check_mode_before_the_end_says_what_would_be_done(monkeypatch):
    monkeypatch.setattr(tables, "clock", Clock(before=1000))
    server = Server({"app": (THREE[:2], [])})
    server.pg.install(monkeypatch)
    rc, result = run_main(tables, args("vacuum", databases=["app"], stop_at=STOP), check_mode=True)
    assert rc == 0 and vacuums(server) == []
    assert (
        result["msg"] == "vacuum (targeted, check): app: would vacuum public.orders, public.carts"
    )


def test_the_markdown_report_lists_what_was_not_started(monkeypatch):
    monkeypatch.setattr(tables, "clock", Clock(before=2))
    server = Server({"app": (THREE, [])})
    server.pg.install(monkeypatch)
    _rc, result = run_main(tables, args("vacuum", databases=["app"], stop_at=STOP))
    (db,) = result["report"]["databases"]
    lines = report.action_lines(result["run"], db).splitlines()
    assert lines[:2] == [
        "- Vacuumed: public.orders",
        f"- Not started, the window ended at {STOP}: public.carts, public.users",
    ]
