"""A role variable of the wrong type is bad input: exit 2, one line naming the variable given and
its expected type, and no host touched (the role's argument check is its first task)."""

from __future__ import annotations

import json
import subprocess

import pytest

from opsplay.errors import ExitCode

from .conftest import LAB_HOSTS

HOSTS = [f"opsplay-lab-{i}" for i in range(1, LAB_HOSTS + 1)]
# What a backup run changes on a host: the backups and the metrics textfile (names, sizes, times).
SNAPSHOT = (
    "find /var/backups/postgresql /var/lib/prometheus/node-exporter -printf '%p %s %T@\\n'"
    " 2>/dev/null | sort"
)


def snapshot(host: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, "sh", "-c", SNAPSHOT], capture_output=True, text=True, check=True
    ).stdout


def test_wrong_type_of_a_role_variable_is_bad_input(run_opsplay):
    before = {host: snapshot(host) for host in HOSTS}
    proc = run_opsplay("run", "backup", "--env", "lab", "-e", "pg_backup_keep_daily=abc")

    assert proc.code == ExitCode.USAGE, proc.out + proc.err
    assert proc.out == ""  # no recap: the run never started its work
    errors = [line for line in proc.err.splitlines() if line.startswith("opsplay:")]
    assert errors == [
        "opsplay: bad input: pg_backup_keep_daily: 'abc' is not an int"
        " (argument spec of role pg_backup)"
    ], proc.err
    assert "offsite" not in proc.err  # its default derives from pg_backup_keep_daily
    assert {host: snapshot(host) for host in HOSTS} == before

    # The history keeps the run with exit 2; no task after the argument check ran on a host.
    # (The role checks its variables at its start, after the run gates took the leases: opsplay
    # then released them, a run of its own in the history.)
    runs = json.loads(run_opsplay("history", "--env", "lab", "--json").out)
    (run,) = [r for r in runs if r["what"] == "run backup"]
    assert [r["what"] for r in runs if r is not run] == [f"release leases of {run['id']}"]
    for host in HOSTS:
        lease = subprocess.run(
            ["podman", "exec", host, "test", "-e", "/var/lib/opsplay/lease.json"], check=False
        )
        assert lease.returncode != 0, f"{host}: the bad-input run left its lease"
    assert run["exit_code"] == ExitCode.USAGE
    for host in HOSTS:
        assert run["hosts"][host]["changed"] == 0, run["hosts"]


# What a schedule changes before and inside its window: the backups, the metrics textfile, the
# maintenance flag and the maintenance log (one line per window start and end).
WINDOW = (
    "find /var/backups/postgresql /var/lib/prometheus/node-exporter /var/lib/opsplay"
    " /var/log/opsplay-maintenance.log -printf '%p %s %T@\\n' 2>/dev/null | sort"
)


def window_snapshot(host: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, "sh", "-c", WINDOW], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize(
    ("variable", "role"),
    [
        # used last, by the security updates after the window (before: the whole window ran)
        ("security_updates_lock_timeout", "security_updates"),
        # used inside the window, whose rescue turned its failure into exit 3
        ("pg_maintenance_vacuum_min_dead_tuples", "pg_maintenance"),
    ],
)
def test_a_schedule_refuses_a_wrong_variable_before_touching_a_host(run_opsplay, variable, role):
    before = {host: window_snapshot(host) for host in HOSTS}
    proc = run_opsplay("maintenance", "weekly", "--env", "lab", "--yes", "-e", f"{variable}=abc")

    assert proc.code == ExitCode.USAGE, proc.out + proc.err
    errors = [line for line in proc.err.splitlines() if line.startswith("opsplay:")]
    assert errors == [
        f"opsplay: bad input: {variable}: 'abc' is not an int (argument spec of role {role})"
    ], proc.err
    # No backup, no window opened or logged, no metrics written, on either host.
    assert {host: window_snapshot(host) for host in HOSTS} == before

    (run,) = json.loads(run_opsplay("history", "--env", "lab", "--json").out)
    assert run["exit_code"] == ExitCode.USAGE
    for host in HOSTS:
        assert run["hosts"][host]["changed"] == 0, run["hosts"]
