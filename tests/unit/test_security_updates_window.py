"""security_updates_stop_at (issue 22 item 3, "a window ends on time"): a host whose turn comes at
or after the window's end is not started (one line, before dpkg or the lists are touched), so a
rollout in batches stops there. The clock is passed in (``sua.clock``): no sleeping.

Uses the recorded dpkg and apt stand-ins of test_security_updates_apt_recover.py; the real thing
is molecule/security_updates and tests/integration/test_security_updates.py.
"""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.opsplay.ops.plugins.modules import security_updates_apt as sua

from . import test_security_updates_apt_recover as recover
from .module_harness import run_main

PREPARE, calls = recover.PREPARE, recover.calls
dpkg, prepared = recover.dpkg, recover.prepared  # the fixtures, used here by name

STOP = "2026-12-07T03:00:00Z"
END = datetime.datetime(2026, 12, 7, 3, 0, 0, tzinfo=datetime.UTC)
ENDED = "not started: the window ended at 2026-12-07 03:00:00 (UTC)"


class Clock:
    """``before`` calls answer one second before the end, the next ones the end itself."""

    def __init__(self, before: int):
        self.before, self.calls = before, 0

    def __call__(self) -> datetime.datetime:
        self.calls += 1
        return END - datetime.timedelta(seconds=1) if self.calls <= self.before else END


def test_the_refusal_is_at_or_after_the_end_only():
    stop = sua.window_end(STOP)
    assert sua.window_refusal(stop, END - datetime.timedelta(seconds=1)) == ""
    assert sua.window_refusal(stop, END) == ENDED
    assert sua.window_refusal(stop, END + datetime.timedelta(hours=5)) == ENDED
    assert sua.window_end("") is None and sua.window_refusal(None, END) == ""


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_window_already_ended_touches_neither_dpkg_nor_the_lists(
    prepared, dpkg, monkeypatch, check_mode
):
    log, state = dpkg
    state.write_text(" libssl3 half configured\n")  # would be recovered by a started run
    monkeypatch.setattr(sua, "clock", Clock(before=0))
    rc, result = run_main(
        sua, dict(PREPARE, refresh_lists=True, stop_at=STOP), check_mode=check_mode
    )
    assert rc == 1 and result["failed"] is True
    assert result["msg"] == ENDED and result["window_ended"] is True
    assert calls(log) == [] and prepared.updates == 0  # no dpkg --audit, no refresh


def test_a_window_ending_later_changes_nothing(prepared, monkeypatch):
    monkeypatch.setattr(sua, "clock", Clock(before=1000))
    rc, result = run_main(sua, dict(PREPARE, refresh_lists=True, stop_at=STOP))
    assert rc == 0, result
    assert result["act"] is True and result["install"] == ["openssl=3.0.11-1+deb12u1"]
    assert prepared.updates == 1


def test_a_window_that_ends_while_preparing_refuses_to_begin_the_upgrade(prepared, monkeypatch):
    clock = Clock(before=1)  # the start is inside the window, the check after the plan is not
    monkeypatch.setattr(sua, "clock", clock)
    rc, result = run_main(sua, dict(PREPARE, refresh_lists=True, stop_at=STOP))
    assert rc == 1 and result["msg"] == ENDED and result["window_ended"] is True
    assert clock.calls == 2 and prepared.updates == 1


def test_nothing_to_do_after_the_end_is_not_a_refusal_once_started(prepared, monkeypatch):
    monkeypatch.setattr(sua, "clock", Clock(before=1))
    rc, result = run_main(sua, dict(PREPARE, hold=["openssl"], stop_at=STOP))
    assert rc == 0, result
    assert result["act"] is False


@pytest.mark.parametrize("bad", ["03:00", "2026-12-07T03:00:00", "2026-12-07T03:00:00+00:00"])
def test_a_stop_at_that_is_not_iso_utc_is_bad_input_in_one_line(prepared, dpkg, bad):
    log, _ = dpkg
    rc, result = run_main(sua, dict(PREPARE, stop_at=bad))
    assert rc == 1 and result["opsplay_bad_input"] is True
    assert result["msg"] == (
        f"security_updates_stop_at {bad!r} is not a UTC time like 2026-12-07T03:00:00Z"
    )
    assert calls(log) == []
