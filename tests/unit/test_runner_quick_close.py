"""runner._quick_close: ansible-runner's pty close skips ptyprocess's 0.1 s sleep for a child
that has already exited (every run's end), and still ends a child that runs (issue 20)."""

from __future__ import annotations

import time

import pexpect

from opsplay import runner


def test_closing_an_exited_child_does_not_sleep() -> None:
    runner._quick_close()
    child = pexpect.spawn("true")
    child.expect(pexpect.EOF)
    while child.isalive():
        time.sleep(0.01)
    started = time.perf_counter()
    child.close()
    assert time.perf_counter() - started < 0.05
    assert child.closed and child.exitstatus == 0


def test_a_running_child_is_still_ended() -> None:
    runner._quick_close()
    child = pexpect.spawn("sleep", ["30"])
    child.close()  # SIGHUP, SIGINT, then SIGKILL as pexpect does
    assert child.closed and not child.isalive()


def test_installed_once() -> None:
    runner._quick_close()
    first = pexpect.spawn
    runner._quick_close()
    assert pexpect.spawn is first and first._opsplay_quick_close
