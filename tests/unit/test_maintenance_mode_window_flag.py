"""plugins/modules/maintenance_mode_window.py main() in this process on a real flag file and log
in tmp_path: reading, recovering and closing a window - which flag is removed, which stays, and
the end entry each close appends to the log (outcome, who closed it); check mode touches
nothing. nginx's answers are proven by molecule/maintenance_mode."""

from __future__ import annotations

import json
import re

import pytest
from ansible_collections.opsplay.ops.plugins.modules import maintenance_mode_window as mw

from .module_harness import run_main

CLOSE = "opsplay maintenance-mode off --env prod"
WEEKLY = {
    "time": "2026-11-30T02:00:41Z",
    "event": "start",
    "run_id": "r1",
    "reason": "weekly maintenance",
    "scheduled": True,
}
BY_HAND = {"time": "2026-11-30T01:00:00Z", "run_id": "r0", "reason": "manual", "scheduled": False}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Host:
    def __init__(self, base):
        self.flag = base / "lib" / "maintenance.flag"
        self.log = base / "maintenance.log"
        self.flag.parent.mkdir()

    def open_window(self, entry):
        self.flag.write_text(json.dumps(entry))
        self.log.write_text(json.dumps(entry) + "\n")

    def args(self, state, **kw):
        base = {
            "state": state,
            "flag_path": str(self.flag),
            "log_path": str(self.log),
            "env": "prod",
            "actor": "ops",
            "close_command": CLOSE,
        }
        return dict(base, **kw)

    def ends(self):
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [json.loads(line) for line in lines if json.loads(line).get("event") == "end"]


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


def test_reading_changes_nothing(host):
    rc, result = run_main(mw, host.args("read"))
    assert rc == 0 and result["changed"] is False and result["window"] is None
    host.open_window(WEEKLY)
    rc, result = run_main(mw, host.args("read", run_id="r9", scheduled=True))
    assert rc == 0 and result["changed"] is False and result["window"] == WEEKLY
    assert host.flag.exists() and host.ends() == []


def test_recovering_another_runs_scheduled_window_under_the_lock_closes_it_as_abandoned(host):
    host.open_window(WEEKLY)
    rc, result = run_main(mw, host.args("recover", run_id="r2", scheduled=True, exclusive=True))
    assert rc == 0, result
    assert result["changed"] is True and not host.flag.exists()
    (end,) = host.ends()
    assert ISO.match(end.pop("time"))
    assert end == {
        "env": "prod",
        "actor": "ops",
        "event": "end",
        "reason": "weekly maintenance",  # the window's own reason
        "outcome": "abandoned",
        "run_id": "r1",
        "started": "2026-11-30T02:00:41Z",
        "closed_by_run_id": "r2",
    }
    assert result["closed"]["outcome"] == "abandoned"


def test_without_the_lock_another_runs_window_is_not_touched(host):
    host.open_window(WEEKLY)
    rc, result = run_main(mw, host.args("recover", run_id="r2", scheduled=True))
    assert rc == 1
    assert result["msg"] == (
        "in maintenance mode since 2026-11-30T02:00:41Z (run r1, weekly maintenance), a scheduled"
        " window its run may still be in (no opsplay environment lock here proves that run gone):"
        f" once it is, close it with `{CLOSE}`"
    )
    assert host.flag.exists() and host.ends() == []


def test_a_window_turned_on_by_hand_survives_recovery(host):
    host.open_window(BY_HAND)
    rc, result = run_main(mw, host.args("recover", run_id="r2", scheduled=True, exclusive=True))
    assert rc == 0 and result["changed"] is False
    assert host.flag.exists() and host.ends() == []


def test_a_run_closes_its_own_window(host):
    host.open_window(WEEKLY)
    rc, result = run_main(mw, host.args("close", run_id="r1", scheduled=True, reason="done"))
    assert rc == 0, result
    assert result["changed"] is True and not host.flag.exists()
    (end,) = host.ends()
    assert end["outcome"] == "ok" and end["reason"] == "done" and "closed_by_run_id" not in end


def test_a_scheduled_close_leaves_another_runs_window_open(host):
    host.open_window(WEEKLY)
    rc, result = run_main(mw, host.args("close", run_id="r2", scheduled=True))
    assert rc == 0 and result["changed"] is False
    assert host.flag.exists() and host.ends() == []


@pytest.mark.parametrize(
    ("exclusive", "outcome"),
    [(True, "abandoned"), (False, "ok")],  # abandoned only when the lock proves that run gone
)
def test_closing_by_hand_closes_any_window(host, exclusive, outcome):
    host.open_window(WEEKLY)
    rc, result = run_main(mw, host.args("close", run_id="r5", exclusive=exclusive))
    assert rc == 0, result
    assert not host.flag.exists()
    (end,) = host.ends()
    assert end["outcome"] == outcome and end["closed_by_run_id"] == "r5"


def test_check_mode_closes_nothing(host):
    host.open_window(WEEKLY)
    log = host.log.read_text()
    rc, result = run_main(mw, host.args("close", run_id="r1", scheduled=True), check_mode=True)
    assert rc == 0 and result["changed"] is True
    assert host.flag.exists() and host.log.read_text() == log


def test_an_unreadable_flag_is_a_window_by_hand_and_can_be_closed(host):
    host.flag.write_text("{not json")
    rc, result = run_main(mw, host.args("read"))
    assert result["window"] == {"reason": "unreadable flag"}
    rc, result = run_main(mw, host.args("recover", run_id="r2", scheduled=True, exclusive=True))
    assert rc == 0 and result["changed"] is False and host.flag.exists()
    rc, result = run_main(mw, host.args("close", outcome="failed", reason="by hand"))
    assert rc == 0, result
    assert not host.flag.exists()
    (end,) = host.ends()
    assert end["outcome"] == "failed" and end["run_id"] == "" and end["started"] == ""


def test_closing_without_a_window_does_nothing(host):
    rc, result = run_main(mw, host.args("close", run_id="r1", scheduled=True))
    assert rc == 0 and result["changed"] is False and not host.log.exists()
