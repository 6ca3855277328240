"""The playbooks' calendar gate (plugins/module_utils/run_gate.py and maintenance_calendar.gate,
issue 22 item 2): the same decision and the same line as the CLI's, the window's end for
opsplay_window_end, the override, --check, a malformed calendar, and the lease's holder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_calendar as shared
from ansible_collections.opsplay.ops.plugins.module_utils import run_gate
from ansible_collections.opsplay.ops.plugins.modules import run_gate as module

from opsplay import maintenance_calendar

from .module_harness import run_main

UTC = dt.UTC
CALENDAR = {"timezone": "Europe/Paris", "windows": {"weekly": "Mon 02:00-04:00"}}
INSIDE = dt.datetime(2026, 12, 7, 1, 30, tzinfo=UTC)  # Mon 02:30 Paris
OUTSIDE = dt.datetime(2026, 12, 4, 10, 3, tzinfo=UTC)  # Fri 11:03 Paris


def args(**over):
    base = {"what": "maintenance weekly", "env": "prod", "schedule": "weekly", "disruptive": True}
    return {**base, "calendar": CALENDAR, **over}


def test_the_cli_and_the_gate_share_one_implementation():
    # the CLI loads the collection's file (by path: no Ansible loader in the CLI process)
    cli_impl = __import__("sys").modules[maintenance_calendar.Calendar.__module__]
    assert Path(cli_impl.__file__).resolve() == Path(shared.__file__).resolve()
    assert "def decide" not in Path(maintenance_calendar.__file__).read_text()


def test_refused_outside_the_window_with_the_clis_line():
    result = run_gate.decide(args(), OUTSIDE)
    assert result["failed"] and result["outside_window"]
    reason = maintenance_calendar.parse(CALENDAR).decide(OUTSIDE, "weekly").reason
    cli_line = maintenance_calendar.refusal("maintenance weekly", "prod", reason, "X")
    assert result["msg"] == cli_line.replace("(X overrides)", f"({run_gate.OVERRIDE} overrides)")
    assert result["msg"] == (
        "maintenance weekly on prod refused: weekly window is Mon 02:00-04:00 Europe/Paris, "
        "now Fri 11:03; next window Mon 2026-12-07 02:00 "
        "(opsplay_outside_window_reason=REASON overrides)"
    )


def test_inside_the_window_sets_its_end_and_the_lease_holder():
    result = run_gate.decide(args(run_ids=["", "R-opsplay"], users=[""]), INSIDE, controller="c1")
    assert not result.get("failed")
    facts = result["gate"]
    assert facts["opsplay_window_end"] == "2026-12-07T03:00:00Z"  # 04:00 Paris, in UTC
    assert facts["opsplay_lease"]["run_id"] == "R-opsplay"
    assert facts["opsplay_lease"]["controller"] == "c1"
    assert facts["opsplay_lease"]["what"] == "maintenance weekly"


def test_an_awx_job_is_named_awx_job_id_as_in_the_maintenance_log():
    """The lease of an AWX job says awx-4242, opsplay's own run id comes first (the id is
    module_utils/run_id.py's; tests/unit/test_run_id.py proves the maintenance_mode role's
    windows name the run alike)."""
    awx = run_gate.decide(args(run_ids=["", ""], awx_job_id="4242"), INSIDE)
    assert awx["gate"]["opsplay_lease"]["run_id"] == "awx-4242"
    cli = run_gate.decide(args(run_ids=["R-opsplay"], awx_job_id="4242"), INSIDE)
    assert cli["gate"]["opsplay_lease"]["run_id"] == "R-opsplay"
    plain = run_gate.decide(args(run_ids=[""], awx_job_id=""), INSIDE, controller="c1")
    assert plain["gate"]["opsplay_lease"]["run_id"].startswith("c1-2026")


def test_a_freeze_refuses_even_inside_the_window():
    frozen = {**CALENDAR, "freezes": {"2026-12-07": "incident 42"}}
    result = run_gate.decide(args(calendar=frozen), INSIDE)
    assert result["failed"] and "change freeze 2026-12-07: incident 42" in result["msg"]


def test_the_reason_to_run_outside_overrides_and_nothing_stops_on_time():
    result = run_gate.decide(args(outside_window="incident 42"), OUTSIDE)
    assert not result.get("failed")
    assert result["gate"]["opsplay_window_end"] == ""
    assert "incident 42" in result["msg"]


def test_check_mode_no_calendar_and_non_disruptive_runs_are_never_refused():
    assert not run_gate.decide(args(), OUTSIDE, check=True).get("failed")
    assert not run_gate.decide(args(calendar={}), OUTSIDE).get("failed")
    assert not run_gate.decide(args(calendar=None), OUTSIDE).get("failed")
    backup = args(what="run backup", schedule="", disruptive=False)
    assert not run_gate.decide(backup, OUTSIDE).get("failed")
    # a schedule is held to its own window even when it is not disruptive (as the CLI)
    daily = args(what="maintenance daily", schedule="daily", disruptive=False)
    daily["calendar"] = {"timezone": "UTC", "windows": {"daily": "09:00-09:30"}}
    assert run_gate.decide(daily, OUTSIDE).get("failed")
    # a schedule the calendar has no window for runs (as the CLI)
    assert not run_gate.decide(args(schedule="monthly"), OUTSIDE).get("failed")


def test_an_ad_hoc_disruptive_procedure_may_use_any_window():
    reindex = args(what="run reindex", schedule="", disruptive=True)
    assert not run_gate.decide(reindex, INSIDE).get("failed")
    refused = run_gate.decide(reindex, OUTSIDE)
    assert refused["msg"].startswith("run reindex on prod refused: windows are weekly Mon")


def test_a_malformed_calendar_fails_in_one_line():
    result = run_gate.decide(args(calendar={"windows": {"weekly": "Monday 2am"}}), INSIDE)
    assert result["failed"] and result["calendar_error"]
    assert result["msg"] == (
        "opsplay_calendar: bad weekly window 'Monday 2am' (e.g. Mon 02:00-04:00)"
    )


def test_the_calendar_the_cli_passes_reads_back_to_the_same_calendar():
    cal = maintenance_calendar.parse(
        {**CALENDAR, "freezes": {"2026-11-26..2026-12-01": "Black Friday", "2026-12-24": "Eve"}}
    )
    assert maintenance_calendar.parse(maintenance_calendar.to_data(cal)) == cal


def test_the_lease_holder_without_opsplay_or_awx_gets_a_run_id_of_its_own():
    one = run_gate.identity("x", ["", ""], [], INSIDE, controller="c1")
    two = run_gate.identity("x", [], [], INSIDE, controller="c1")
    assert one["run_id"].startswith("c1-20261207T013000Z-") and one["run_id"] != two["run_id"]
    assert one["user"]  # this machine's user
    awx = run_gate.identity("x", ["", "", "4711"], ["alice"], INSIDE, controller="ee-1")
    assert (awx["run_id"], awx["user"]) == ("4711", "alice")


def test_the_module_form_decides_the_same():
    rc, result = run_main(
        module, {"what": "run reindex", "env": "prod", "disruptive": True, "calendar": CALENDAR}
    )
    # now is outside a Mon 02:00-04:00 Paris window unless the test runs inside it
    inside = maintenance_calendar.parse(CALENDAR).decide(dt.datetime.now(UTC)).allowed
    assert (rc == 0) == inside
    assert (
        result.get("gate", {}).get("opsplay_lease", {}).get("what", "run reindex") == "run reindex"
    )
    rc, result = run_main(
        module, {"what": "run reindex", "disruptive": True, "calendar": CALENDAR}, check_mode=True
    )
    assert rc == 0 and "opsplay_window_end" in result["gate"]
