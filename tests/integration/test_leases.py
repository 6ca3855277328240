"""Host leases and the calendar gate on the lab (issue 18 item 1, issue 22 item 2): a second
controller (another state directory) is refused naming the first and changes nothing; a killed
run's lease blocks until it expires or `opsplay unlock` breaks it; read-only procedures and
--check run beside a held lease; a plain ansible-playbook weekly outside its calendar window
stops in the gate and touches no host."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsplay.errors import ExitCode

from .conftest import REPO

HOSTS = ("opsplay-lab-1", "opsplay-lab-2")
LEASE = "/var/lib/opsplay/lease.json"
LOG = "/var/log/opsplay-maintenance.log"
# what a refused run may do: its checks on the controller and the lease task that refused it
GATE_TASKS = {
    "Check the variables given to each role against its argument spec",
    "Check the maintenance calendar and name this run's lease",
    "Take this run's lease on the host",
}


@pytest.fixture(autouse=True)
def no_lease_left(run_opsplay):
    """Whatever a test leaves (a failure halfway), the lab ends with no lease on it."""
    yield
    run_opsplay("unlock", "--env", "lab", "--yes")


def lease_on(host: str) -> dict | None:
    proc = subprocess.run(
        ["podman", "exec", host, "cat", LEASE], capture_output=True, text=True, check=False
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def on_host(host: str, script: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout


def write_lease(host: str, lease: dict) -> None:
    subprocess.run(
        ["podman", "exec", "-i", host, "sh", "-c", f"mkdir -p /var/lib/opsplay && cat > {LEASE}"],
        input=json.dumps(lease),
        text=True,
        check=True,
    )


def wait_for(predicate, what: str, limit: float = 120) -> None:
    """Poll until ``predicate()`` (a guard against hanging, not a timed assertion)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.2)


def run_ids(state: Path) -> list[str]:
    return sorted(p.name for p in (state / "runs").iterdir()) if (state / "runs").is_dir() else []


def tasks_run(state: Path, run_id: str) -> set[str]:
    """The names of the tasks that reported a result on a host in the run."""
    names = set()
    for path in (state / "runs" / run_id).glob("artifacts/*/job_events/*.json"):
        event = json.loads(path.read_text())
        if event.get("event", "").startswith("runner_on_") and event["event"] != "runner_on_start":
            names.add(event["event_data"].get("task"))
    return names


def other_state(tmp_path: Path) -> dict[str, str]:
    """Another controller's state directory (a second operator, a cron job)."""
    return {"OPSPLAY_STATE_DIR": str(tmp_path / "other-state")}


def held_by_first(run_opsplay) -> str:
    """Wait until the run started from the fixture's state holds both hosts; its run ID."""
    wait_for(lambda: run_ids(run_opsplay.state), "the first run's record")
    (first,) = run_ids(run_opsplay.state)
    wait_for(
        lambda: all((lease_on(h) or {}).get("run_id") == first for h in HOSTS),
        "the first run's leases",
    )
    return first


def test_a_second_controller_is_refused_naming_the_first_and_changes_nothing(run_opsplay, tmp_path):
    first_run = run_opsplay.start("maintenance", "weekly", "--env", "lab", "--json")
    try:
        first = held_by_first(run_opsplay)
        second = run_opsplay(
            "maintenance", "weekly", "--env", "lab", "--json", env=other_state(tmp_path)
        )
        assert second.code == ExitCode.LOCKED, second.err
        (line,) = second.err.strip().splitlines()
        me = f"root@{socket.gethostname()}"
        assert line.startswith("opsplay: maintenance weekly on lab: every host is held by another")
        assert f"held by {me} (run {first}, maintenance weekly)" in line
        # the second run did nothing but its gates: the leases are still the first run's
        (refused,) = run_ids(tmp_path / "other-state")
        assert tasks_run(tmp_path / "other-state", refused) <= GATE_TASKS
        assert all(lease_on(h)["run_id"] == first for h in HOSTS)
        _, err = first_run.communicate(timeout=600)
    finally:
        if first_run.poll() is None:
            os.killpg(first_run.pid, signal.SIGKILL)
    assert first_run.returncode == ExitCode.OK, err
    # the refused run opened no window: the maintenance log never names it
    assert all(refused not in on_host(h, f"cat {LOG} 2>/dev/null || true") for h in HOSTS)
    assert all(lease_on(h) is None for h in HOSTS)  # released at the end


def test_a_killed_runs_lease_blocks_until_unlock_or_its_expiry(run_opsplay, tmp_path):
    killed = run_opsplay.start(
        "maintenance", "weekly", "--env", "lab", "-e", "opsplay_lease_ttl=45"
    )
    try:
        first = held_by_first(run_opsplay)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=60)
        wait_for(
            lambda: subprocess.run(["pgrep", "-f", first], capture_output=True).returncode != 0,
            "the killed run's processes to end",
            limit=60,
        )
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
    assert all(lease_on(h)["run_id"] == first for h in HOSTS)  # nothing released it

    blocked = run_opsplay("run", "rotate-logs", "--env", "lab", env=other_state(tmp_path))
    assert blocked.code == ExitCode.LOCKED and f"(run {first}, " in blocked.err

    unlocked = run_opsplay("unlock", "--env", "lab", "--limit", HOSTS[0], "--yes")
    assert unlocked.code == ExitCode.OK, unlocked.err
    (line,) = unlocked.out.strip().splitlines()
    assert line.startswith(f"{HOSTS[0]}: released lease of root@") and f"(run {first}, " in line
    assert lease_on(HOSTS[0]) is None and lease_on(HOSTS[1])["run_id"] == first

    # one host free, one still held: the free one runs, the held one is refused (exit 3)
    half = run_opsplay("run", "rotate-logs", "--env", "lab", env=other_state(tmp_path))
    assert half.code == ExitCode.HOSTS_FAILED, half.err
    assert f"{HOSTS[1]}: refused: held by root@" in half.err + half.out
    assert lease_on(HOSTS[0]) is None  # the free host's lease was taken and released

    expires = dt.datetime.strptime(lease_on(HOSTS[1])["expires"], "%Y-%m-%dT%H:%M:%SZ")
    wait_for(
        lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None) > expires,
        "the lease's expiry",
    )
    after = run_opsplay("run", "rotate-logs", "--env", "lab", env=other_state(tmp_path))
    assert after.code == ExitCode.OK, after.err
    assert all(lease_on(h) is None for h in HOSTS)
    # the killed weekly opened no window (killed in its gates); none is left open
    assert all(on_host(h, "test -e /var/lib/opsplay/maintenance.flag || echo no") for h in HOSTS)


def test_read_only_procedures_and_check_runs_go_beside_a_held_lease(run_opsplay):
    lease = {
        "controller": "bastion-9",
        "user": "bob",
        "run_id": "R-bob",
        "what": "maintenance weekly",
        "started": "2026-01-01T00:00:00Z",
        "expires": "2099-01-01T00:00:00Z",
    }
    for host in HOSTS:
        write_lease(host, lease)
    try:
        assert run_opsplay("run", "health", "--env", "lab", "--json").code == ExitCode.OK
        assert run_opsplay("status", "--env", "lab", "--json").code == ExitCode.OK
        dry = run_opsplay("run", "rotate-logs", "--env", "lab", "--check", "--json")
        assert dry.code == ExitCode.OK, dry.err
        changing = run_opsplay("run", "backup", "--env", "lab")
        assert changing.code == ExitCode.LOCKED
        assert "held by bob@bastion-9 (run R-bob, maintenance weekly)" in changing.err
        assert all(lease_on(h) == lease for h in HOSTS)
    finally:
        run_opsplay("unlock", "--env", "lab", "--yes")
    assert all(lease_on(h) is None for h in HOSTS)


def test_plain_ansible_playbook_outside_the_window_stops_in_the_gate(lab_inventories, tmp_path):
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[(dt.date.today().weekday() + 3) % 7]
    calendar = {"timezone": "UTC", "windows": {"weekly": f"{day} 03:00-03:01"}}
    extra = tmp_path / "calendar.json"
    extra.write_text(json.dumps({"opsplay_calendar": calendar}))
    watched = f"cat {LOG} 2>/dev/null | wc -l; ls -R /var/backups/postgresql 2>/dev/null | wc -l"
    before = {h: on_host(h, watched) for h in HOSTS}
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_NOCOLOR": "1",
    }
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            *("-i", str(lab_inventories / "lab")),
            str(REPO / "playbooks" / "maintenance-weekly.yml"),
            *("-e", f"@{extra}"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 2, run.stdout
    assert "maintenance weekly on lab refused: weekly window is " in run.stdout
    assert "TASK [Take this run's lease on the host]" not in run.stdout
    assert {h: on_host(h, watched) for h in HOSTS} == before
    assert all(lease_on(h) is None for h in HOSTS)
