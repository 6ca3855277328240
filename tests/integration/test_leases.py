"""Host leases and the calendar gate on the lab (issue 18 item 1, issue 22 item 2): a second
controller (another state directory) is refused naming the first and changes nothing; a killed
run's lease blocks until it expires or `opsplay unlock` breaks it; read-only procedures and
--check run beside a held lease; a plain ansible-playbook weekly outside its calendar window
stops in the gate and touches no host; under plain ansible-playbook, the last play releases the
lease of a host that failed after the gate (by delegation from a host still in the run), never
another run's lease, and a failed host it cannot reach does not fail the run."""

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
    "Keep the gate's answer for the run",
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


def ansible_playbook(inventories: list[Path], playbook: Path, *args: str):
    """A plain ansible-playbook run (no opsplay) with the project's ansible.cfg, as AWX or an
    operator's shell runs it."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_NOCOLOR": "1",
    }
    sources = [arg for path in inventories for arg in ("-i", str(path))]
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), *sources, str(playbook), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def host_vars(tmp_path: Path, host: str, values: dict) -> Path:
    """An extra inventory source giving ``host`` these variables."""
    path = tmp_path / "extra-hosts.yml"
    path.write_text(json.dumps({"all": {"hosts": {host: values}}}))
    return path


def test_plain_ansible_playbook_releases_the_lease_of_a_host_that_failed(lab_inventories, tmp_path):
    """backup.yml without opsplay: the second host fails in its backup (a database it does not
    have), after the gate took its lease; the release play, on the first host, releases it."""
    failing = host_vars(tmp_path, HOSTS[1], {"pg_backup_databases": ["opsplay_no_such_db"]})
    run = ansible_playbook([lab_inventories / "lab", failing], REPO / "playbooks" / "backup.yml")
    assert run.returncode == 2, run.stdout[-3000:]
    recap = run.stdout[run.stdout.index("PLAY RECAP") :]
    assert f"{HOSTS[1]}" in recap and "failed=1" in recap.split(HOSTS[1])[1].splitlines()[0]
    assert "database opsplay_no_such_db does not exist" in run.stdout
    assert f"ok: [{HOSTS[0]} -> {HOSTS[1]}] => (item={HOSTS[1]})" in run.stdout
    assert all(lease_on(h) is None for h in HOSTS)  # neither host is held by the failed run


RELEASE_TEST_PLAYBOOK = """
- name: Take the run gates
  hosts: all
  gather_facts: false
  vars:
    opsplay_gate: {{what: lease test, schedule: "", disruptive: false, lease: true}}
  tasks:
    - name: Take the run gates
      ansible.builtin.import_tasks: {tasks}/gates.yml

- name: Fail the second host after the gate
  hosts: "{{{{ '{failing}' if case == 'alone in its play' else 'all' }}}}"
  gather_facts: false
  tasks:
    - name: Another run's lease replaces this run's (broken by unlock, taken by another run)
      ansible.builtin.copy:
        content: '{other}'
        dest: {lease}
        mode: "0644"
      when: case == 'another run' and inventory_hostname == '{failing}'
    # its ansible_host is templated where the delegation runs: on every host
    - name: The failing host cannot be reached from now on (its ansible_host names no container)
      ansible.builtin.set_fact:
        lease_test_gone: true
      when: case == 'unreachable'
    - name: Fail
      ansible.builtin.fail:
        msg: failed after the gate
      when: inventory_hostname == '{failing}'

- name: Release this run's leases
  hosts: all
  gather_facts: false
  tasks:
    - name: Release this run's lease
      ansible.builtin.import_tasks: {tasks}/release.yml
"""
OTHER = {
    "controller": "bastion-9",
    "user": "bob",
    "run_id": "R-bob",
    "what": "run backup",
    "started": "2026-01-01T00:00:00Z",
    "expires": "2099-01-01T00:00:00Z",
}


@pytest.mark.parametrize("case", ["another run", "unreachable", "alone in its play"])
def test_the_release_of_a_failed_host_keeps_another_runs_lease_and_skips_an_unreachable_host(
    lab_inventories, tmp_path, case
):
    """The failed host's lease: another run's is kept; an unreachable host is tried and skipped.
    And the limit the README states: when every host of a play fails (here the only host of the
    failing play), Ansible runs no later play, so both leases stay (opsplay releases them after
    its own runs; AWX's expire)."""
    playbook = tmp_path / "lease-test.yml"
    playbook.write_text(
        RELEASE_TEST_PLAYBOOK.format(
            tasks=REPO / "playbooks" / "tasks",
            failing=HOSTS[1],
            other=json.dumps(OTHER),
            lease=LEASE,
        )
    )
    gone = f"{{{{ 'opsplay-lab-gone' if lease_test_gone | default(false) else '{HOSTS[1]}' }}}}"
    extra = host_vars(tmp_path, HOSTS[1], {"ansible_host": gone})
    run = ansible_playbook(  # -v: the results, with the lease module's line
        [lab_inventories / "lab", extra], playbook, "-v", "-e", f"case='{case}'"
    )
    assert run.returncode == 2, run.stdout[-3000:]  # the failed host, nothing else
    recap = run.stdout[run.stdout.index("PLAY RECAP") :]
    first = recap.split(HOSTS[0])[1].splitlines()[0]
    assert "failed=0" in first and "unreachable=0" in first, recap
    if case == "alone in its play":
        assert "PLAY [Release this run's leases]" not in run.stdout
        assert all((lease_on(h) or {}).get("what") == "lease test" for h in HOSTS)
        return
    assert lease_on(HOSTS[0]) is None  # released by itself
    if case == "another run":
        assert lease_on(HOSTS[1]) == OTHER  # not this run's: kept
        assert "kept lease of bob@bastion-9 (run R-bob, run backup) since " in run.stdout
    else:
        # the delegated release could not reach it: ignored (not a failure of the run)
        assert "ignored=1" in first, run.stdout[-4000:]
        assert (lease_on(HOSTS[1]) or {}).get("what") == "lease test"  # it expires on its own


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
