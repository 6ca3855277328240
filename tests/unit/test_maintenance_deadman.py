"""plugins/module_utils/maintenance_deadman.py: the dead-man switch's decisions (duration, deadline,
the systemd-run command, what an armed timer says) and the close every path shares, run here
with a recorded systemctl/systemd-run; the timer's script run as the host runs it (a copy in a
directory of its own, python3 FILE expire). molecule/maintenance_mode (verify_deadman.yml) and
tests/integration/test_maintenance_window.py prove the real timer."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_deadman as deadman
from ansible_collections.opsplay.ops.plugins.module_utils import timestamps
from ansible_collections.opsplay.ops.plugins.modules import maintenance_mode_window as mw

from .module_harness import run_main

UTILS = Path(deadman.__file__).parent
NOW = datetime.datetime(2026, 12, 7, 2, 0, 41, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("given", "seconds"),
    [(60, 60), ("7200", 7200), ("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45),
     (" 2H ", 7200), ("1h0m5s", 3605)],
)  # fmt: skip
def test_durations_in_seconds_or_hours_minutes_seconds(given, seconds):
    assert deadman.parse_duration(given) == seconds


@pytest.mark.parametrize("given", [0, "0", "", "abc", "2 days", "-5", "1.5h", True, None])
def test_a_bad_duration_is_one_line_naming_the_variable(given):
    with pytest.raises(ValueError) as caught:
        deadman.parse_duration(given)
    assert str(caught.value).startswith("maintenance_mode_max_duration must be seconds")
    assert "\n" not in str(caught.value)


def test_the_deadline_is_at_most_the_windows_end():
    assert deadman.deadline_at(NOW, 3600, "") == NOW + datetime.timedelta(hours=1)
    end = "2026-12-07T02:30:00Z"
    assert timestamps.iso(deadman.deadline_at(NOW, 3600, end)) == end
    later = "2026-12-07T04:00:00Z"
    assert deadman.deadline_at(NOW, 3600, later) == NOW + datetime.timedelta(hours=1)


def test_a_past_or_bad_window_end_opens_nothing():
    with pytest.raises(ValueError, match=r"^the window ended at 2026-12-07T02:00:00Z "):
        deadman.deadline_at(NOW, 3600, "2026-12-07T02:00:00Z")
    with pytest.raises(ValueError, match=r"^maintenance_mode_deadline: not a timestamp: 'Mon 3h'"):
        deadman.deadline_at(NOW, 3600, "Mon 3h")


def test_the_timer_is_transient_fires_on_time_and_leaves_nothing():
    at = NOW + datetime.timedelta(seconds=59.2)
    cmd = deadman.arm_command(at, NOW, "/usr/bin/python3", "/opt/x", "/f", "/l", ["systemd-run"])
    assert cmd[:2] == ["systemd-run", "--unit=opsplay-maintenance-expire"]
    assert "--on-active=60s" in cmd  # rounded up, never early
    assert "--description=opsplay maintenance mode expires at 2026-12-07T02:01:40Z" in cmd
    assert {"--timer-property=AccuracySec=1s", "--timer-property=RemainAfterElapse=no"} <= set(cmd)
    assert "--collect" in cmd
    assert cmd[-7:] == ["/usr/bin/python3", "/opt/x/maintenance_deadman.py", "expire",
                        "--flag", "/f", "--log", "/l"]  # fmt: skip


def fake_systemctl(tmp_path, show):
    """A systemctl that logs its arguments and answers ``show`` with ``show``."""
    log = tmp_path / "systemctl.log"
    script = (
        f"import sys; open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n'); "
        f"sys.stdout.write({show!r} if sys.argv[1] == 'show' else '')"
    )
    return [sys.executable, "-c", script], log


def test_what_an_armed_timer_says(tmp_path):
    active = (
        "ActiveState=active\nDescription=opsplay maintenance mode expires at 2026-12-07T04:00:41Z\n"
    )
    systemctl, _log = fake_systemctl(tmp_path, active)
    assert deadman.armed(systemctl) == "2026-12-07T04:00:41Z"
    systemctl, _log = fake_systemctl(tmp_path, "ActiveState=inactive\nDescription=\n")
    assert deadman.armed(systemctl) is None
    assert deadman.armed(["/nonexistent/systemctl"]) is None


def test_arming_replaces_the_old_timer_and_a_failure_is_one_line(tmp_path):
    systemctl, log = fake_systemctl(tmp_path, "")
    said = "import sys; sys.stderr.write('Failed to start\\n  transient unit\\n'); sys.exit(1)"
    fails = [sys.executable, "-c", said]
    problem = deadman.arm(fails, systemctl)
    assert problem == (
        f"cannot arm the maintenance deadline ({sys.executable}): Failed to start transient unit"
    )
    assert log.read_text().splitlines()[0] == "stop opsplay-maintenance-expire.timer"


def window_files(tmp_path, window):
    flag, log = tmp_path / "maintenance.flag", tmp_path / "maintenance.log"
    flag.write_text(json.dumps(window))
    return flag, log


WINDOW = {"time": "2026-12-07T02:00:41Z", "run_id": "r1", "reason": "weekly maintenance",
          "scheduled": True, "env": "prod", "deadline": "2026-12-07T03:00:41Z"}  # fmt: skip


def test_expiry_closes_the_window_logs_expired_and_disarms(tmp_path):
    flag, log = window_files(tmp_path, WINDOW)
    systemctl, calls = fake_systemctl(tmp_path, "")
    entry = deadman.expire(str(flag), str(log), systemctl)
    assert not flag.exists()
    assert json.loads(log.read_text()) == entry
    assert entry["outcome"] == "expired" and entry["event"] == "end"
    assert entry["run_id"] == "r1" and entry["reason"] == "weekly maintenance"
    assert entry["deadline"] == WINDOW["deadline"] and entry["env"] == "prod"
    assert entry["actor"] == "opsplay dead-man switch (opsplay-maintenance-expire.timer)"
    assert "closed_by_run_id" not in entry
    assert "stop opsplay-maintenance-expire.timer" in calls.read_text()


def test_a_window_closed_first_is_not_closed_again(tmp_path):
    flag, log = window_files(tmp_path, WINDOW)
    flag.unlink()  # `off` won the race with the timer
    systemctl, _calls = fake_systemctl(tmp_path, "")
    assert deadman.expire(str(flag), str(log), systemctl) is None
    p = {"flag_path": str(flag), "log_path": str(log), "systemctl": systemctl}
    assert deadman.close(p, WINDOW, "close", "ok") is None
    assert not log.exists()  # nothing logged twice


def test_the_timers_script_runs_from_its_copies_alone(tmp_path):
    # as the host runs it: python3 FILE in a directory holding only the copied sources
    sources = {name: (UTILS / name).read_text() for name in deadman.SOURCES}
    program = tmp_path / "program"
    assert len(deadman.install_program(str(program), sources)) == 3
    assert deadman.install_program(str(program), sources) == []  # unchanged: not rewritten
    flag, log = window_files(tmp_path, WINDOW)
    done = subprocess.run(
        [sys.executable, "-E", "-s", str(program / deadman.SCRIPT), "expire", "--flag", str(flag),
         "--log", str(log), "--systemctl", "true"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not flag.exists() and json.loads(log.read_text())["outcome"] == "expired"


def test_open_records_the_deadline_and_the_outside_window_reason(tmp_path):
    p = {"env": "prod", "actor": "a", "reason": "weekly maintenance", "run_id": "r1",
         "scheduled": True, "outside_window_reason": "failover drill INC-4711"}  # fmt: skip
    entry = mw.start_entry(p, {"site": 200}, "2026-12-07T03:00:41Z")
    assert entry["deadline"] == "2026-12-07T03:00:41Z"
    assert entry["outside_window"] == "failover drill INC-4711"
    plain = mw.start_entry(dict(p, outside_window_reason=""), {})
    assert "deadline" not in plain and "outside_window" not in plain


def test_bad_max_duration_fails_the_module_before_anything(tmp_path):
    flag = tmp_path / "flag"
    args = {"state": "open", "flag_path": str(flag), "log_path": str(tmp_path / "log"),
            "max_duration": "soon"}  # fmt: skip
    rc, result = run_main(mw, args)
    assert rc == 1 and result["msg"].startswith("maintenance_mode_max_duration must be seconds")
    assert not flag.exists() and not (tmp_path / "log").exists()


def test_open_arms_before_the_flag_keeps_an_armed_timer_and_close_disarms(tmp_path):
    from .test_maintenance_mode_window_open import Web

    web = Web(tmp_path)
    try:
        armed_log = tmp_path / "systemd-run.log"
        record = f"import sys; open({str(armed_log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')"
        show = "ActiveState=active\nDescription=opsplay maintenance mode expires at {}\n".format(
            "2026-12-07T09:00:00Z"
        )
        systemctl, calls = fake_systemctl(tmp_path, show)
        sources = {name: (UTILS / name).read_text() for name in deadman.SOURCES}
        switch = {"max_duration": "2h", "expiry_dir": str(tmp_path / "program"),
                  "expiry_sources": sources, "systemctl": systemctl,
                  "systemd_run": [sys.executable, "-c", record]}  # fmt: skip
        rc, result = run_main(mw, web.args("open", **switch))
        assert rc == 0, result
        assert result["armed"] is True and armed_log.read_text().count("--unit=") == 1
        flag = json.loads(web.flag.read_text())
        assert flag["deadline"] == result["deadline"]
        assert f"expires at {flag['deadline']}" in armed_log.read_text()
        # on again, the timer armed (systemctl show says so): kept, not re-armed
        rc, again = run_main(mw, web.args("open", **switch))
        assert rc == 0 and again["changed"] is False and "armed" not in again
        assert again["deadline"] == "2026-12-07T09:00:00Z"
        assert armed_log.read_text().count("--unit=") == 1
        rc, closed = run_main(mw, web.args("close", systemctl=systemctl))
        assert rc == 0 and closed["closed"]["deadline"] == flag["deadline"]
        assert calls.read_text().splitlines()[-2] == "stop opsplay-maintenance-expire.timer"
    finally:
        web.site.close()
