"""The maintenance calendar on the lab (issue 22): a run outside its window is refused before any
host is touched and recorded as missed; `--outside-window REASON` runs it anyway and the reason
reaches the hosts' maintenance log."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from opsplay.errors import ExitCode

HOSTS = ("opsplay-lab-1", "opsplay-lab-2")
MAINTENANCE_LOG = "/var/log/opsplay-maintenance.log"
# What a window changes on a host: the maintenance log, opsplay's own state on the host (flag,
# leases, status records), the backups, and the packages.
FOOTPRINT = (
    f"cat {MAINTENANCE_LOG} 2>/dev/null; "
    "find /var/lib/opsplay /var/backups/postgresql -printf '%p %s %T@\\n' 2>/dev/null | sort; "
    "dpkg-query -W -f '${Package} ${Version}\\n' | md5sum"
)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def on_host(host: str, script: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout


def footprint() -> dict[str, str]:
    return {host: on_host(host, FOOTPRINT) for host in HOSTS}


@pytest.fixture
def calendar(lab_inventories):
    """Write the lab env's calendar.yml (removed afterwards: the inventory dir is shared)."""
    path = lab_inventories / "lab" / "calendar.yml"

    def write(text: str) -> None:
        path.write_text(text)

    yield write
    path.unlink(missing_ok=True)


def elsewhere_in_the_week() -> str:
    """A weekly window, in UTC, three days from now: never open while the test runs."""
    day = DAYS[(dt.datetime.now(dt.UTC).weekday() + 3) % 7]
    return f"timezone: UTC\nwindows:\n  weekly: {day} 02:00-04:00\n"


def test_a_weekly_outside_its_window_is_refused_touching_no_host(run_opsplay, calendar):
    calendar(elsewhere_in_the_week())
    before = footprint()

    proc = run_opsplay("maintenance", "weekly", "--env", "lab", "--yes")

    assert proc.code == ExitCode.OUTSIDE_WINDOW, proc.err
    lines = proc.err.strip().splitlines()
    assert len(lines) == 1 and "refused: weekly window is" in lines[0], proc.err
    assert "next window" in lines[0]
    assert footprint() == before
    status = run_opsplay("status", "--env", "lab")
    assert "missed 1 window(s)" in status.out, status.out


def test_a_freeze_refuses_a_disruptive_procedure(run_opsplay, calendar):
    today = dt.datetime.now(dt.UTC).date()
    calendar(
        "timezone: UTC\nwindows:\n  weekly: Mon 00:00-23:59\n  daily: 00:00-23:59\n"
        f"freezes:\n  {today - dt.timedelta(days=1)}..{today + dt.timedelta(days=1)}: "
        "Black Friday\n"
    )
    before = footprint()

    proc = run_opsplay("run", "security-updates", "--env", "lab", "--yes")

    assert proc.code == ExitCode.OUTSIDE_WINDOW, proc.err
    assert "Black Friday" in proc.err
    assert footprint() == before
    # a read-only procedure is never refused
    assert run_opsplay("run", "health", "--env", "lab").code == 0


def test_outside_window_runs_the_weekly_and_logs_the_reason(run_opsplay, calendar):
    calendar(elsewhere_in_the_week())
    before = {host: on_host(host, f"cat {MAINTENANCE_LOG} 2>/dev/null || true") for host in HOSTS}
    reason = "database failover drill INC-4711"

    proc = run_opsplay(
        "maintenance", "weekly", "--env", "lab", "--yes", "--json", "--outside-window", reason
    )

    assert proc.code == 0, proc.err
    assert json.loads(proc.out)["outside_window"] == reason
    web_hosts = [h for h in HOSTS if before[h] != on_host(h, f"cat {MAINTENANCE_LOG}")]
    assert web_hosts, "no host logged a maintenance window"
    for host in web_hosts:
        entries = [
            json.loads(line)
            for line in on_host(host, f"cat {MAINTENANCE_LOG}")[len(before[host]) :].splitlines()
        ]
        assert any(reason in json.dumps(entry) for entry in entries), entries
