"""opsplay as a library against the lab: a procedure, a window, status and backups, an
interrupted window, and two environments run from two threads at once (src/opsplay/api.py)."""

from __future__ import annotations

import calendar
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

import opsplay
from opsplay.errors import ExitCode

from .test_maintenance_window import (
    HOST,
    SILENT_LISTENER,
    flag_exists,
    site_status,
    stop_listener,
)


@pytest.fixture
def settings(lab_inventories, tmp_path):
    return opsplay.Settings(inventory_dir=str(lab_inventories), state_dir=str(tmp_path / "state"))


def test_a_procedure_with_its_events_then_status_and_backups(settings):
    events: list[opsplay.Event] = []
    result = opsplay.run("health", env="lab", on_event=events.append, settings=settings)
    assert result.ok, result.failed_hosts
    assert set(result.hosts) == {"opsplay-lab-1", "opsplay-lab-2"}
    assert all(row.ok > 0 and not row.failed for row in result.hosts.values())
    assert set(result.data["health"]) == set(result.hosts)  # the role's report per host
    results = [e for e in events if e.kind == "task_result"]
    assert {e.host for e in results} == set(result.hosts) and events[-1].kind == "run_finished"

    backup = opsplay.run("backup", env="lab", limit=HOST, settings=settings)
    assert backup.ok, backup.failed_hosts
    listed = opsplay.backups("lab", limit=HOST, settings=settings)
    postgres = next(b for b in listed if b.database == "postgres")
    assert postgres.host == HOST and postgres.status == "ok" and postgres.newest_good
    ended = calendar.timegm(time.strptime(postgres.newest_good["ended"], "%Y-%m-%dT%H:%M:%SZ"))
    assert ended >= int(backup.started)  # the backup this run made
    fleet = opsplay.status("lab", limit=HOST, settings=settings)
    assert fleet.hosts[HOST]["backup_missing"] == []
    assert fleet.to_json()["run"]["id"] == fleet.run_id
    assert [r.what for r in opsplay.history("lab", settings=settings)] == [
        "run health",
        "run backup",
        "backups",
        "status",
    ]


def test_a_window(settings):
    result = opsplay.maintenance("weekly", env="lab", limit=HOST, settings=settings)
    assert result.ok, result.failed_hosts
    assert result.what == "maintenance weekly" and not flag_exists() and site_status() == "200"


def test_an_interrupted_window_is_closed_and_raised(settings):
    """SIGINT to this process (the main thread runs the window) cancels the run; the library
    closes the window and raises Interrupted with the result; the caller's SIGINT handler is
    back afterwards."""
    subprocess.run(
        ["podman", "exec", "-d", HOST, "timeout", "240", "python3", "-c", SILENT_LISTENER],
        check=True,
    )
    slow = {
        "cert_renewal_endpoints": [{"host": "127.0.0.1", "port": 4443, "server_name": "stall"}],
        "cert_renewal_endpoint_timeout": 60,
    }
    handler = signal.getsignal(signal.SIGINT)

    def interrupt_inside_the_window() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not flag_exists():
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_inside_the_window, daemon=True).start()
    try:
        with pytest.raises(opsplay.Interrupted) as raised:
            opsplay.maintenance("weekly", env="lab", limit=HOST, extra_vars=slow, settings=settings)
    finally:
        stop_listener()
    assert raised.value.code == ExitCode.INTERRUPTED
    assert raised.value.result.status == "canceled"
    assert "maintenance mode is off on lab" in raised.value.result.notices
    assert not flag_exists() and site_status() == "200"
    assert signal.getsignal(signal.SIGINT) is handler


def test_two_environments_from_two_threads(settings, lab_inventories, tmp_path):
    """Two environments (the lab's two hosts as 'east' and 'west'), one run each, from two
    threads: both runs are inside their playbooks at the same time (a barrier on their first
    task), both succeed, and each is in the history."""
    root = tmp_path / "inventories"
    for env in ("east", "west"):
        shutil.copytree(lab_inventories / "lab", root / env)
    both = opsplay.Settings(inventory_dir=str(root), state_dir=settings.state_dir)
    barrier = threading.Barrier(2, timeout=120)
    results: dict[str, object] = {}

    def run(env: str, host: str) -> None:
        met: list[bool] = []

        def on_event(event: opsplay.Event) -> None:
            if event.kind == "task_started" and not met:
                met.append(True)
                barrier.wait()  # raises BrokenBarrierError if the other run is not running

        try:
            results[env] = opsplay.run(
                "health", env=env, limit=host, on_event=on_event, settings=both
            )
        except BaseException as exc:  # reported below
            results[env] = exc

    threads = [
        threading.Thread(target=run, args=("east", "opsplay-lab-1")),
        threading.Thread(target=run, args=("west", "opsplay-lab-2")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for env in ("east", "west"):
        result = results[env]
        assert isinstance(result, opsplay.RunResult), result
        assert result.ok and result.env == env, result.failed_hosts
    assert {r.env for r in opsplay.history(settings=both)} == {"east", "west"}
