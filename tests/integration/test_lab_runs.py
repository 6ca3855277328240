"""opsplay against real lab containers: outcomes, exit codes, history, interrupt."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time

from opsplay.errors import ExitCode


def summary(proc):
    assert proc.out.strip(), proc.err
    return json.loads(proc.out)


def test_weekly_maintenance_succeeds_on_every_lab_host(run_opsplay):
    proc = run_opsplay("maintenance", "weekly", "--env", "lab", "--json")
    assert proc.code == ExitCode.OK, proc.err
    doc = summary(proc)
    assert doc["status"] == "successful" and doc["exit_code"] == 0
    assert doc["strategy"] == "mitogen_linear"  # the default, with become and probes working
    assert sorted(doc["hosts"]) == [f"opsplay-lab-{i}" for i in range(1, len(doc["hosts"]) + 1)]
    assert all(h["ok"] > 0 and h["failed"] == 0 for h in doc["hosts"].values())

    history = json.loads(run_opsplay("history", "--env", "lab", "--json").out)
    assert [r["id"] for r in history] == [doc["id"]]
    shown = run_opsplay("history", "show", doc["id"])
    assert "PLAY RECAP" in shown.out

    run_dir = run_opsplay.state / "runs" / doc["id"]
    for path in [run_dir, *run_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert not (run_dir / "env").exists()  # no per-run inputs left behind


def test_recap_and_progress_without_terminal(run_opsplay):
    proc = run_opsplay("run", "health", "--env", "lab", "--limit", "opsplay-lab-1")
    assert proc.code == ExitCode.OK, proc.err
    assert "run health on lab: successful" in proc.out
    assert "opsplay-lab-1" in proc.out and "unreachable" in proc.out  # the recap table
    assert "opsplay-lab-1: ok:" in proc.err  # one progress line per task result


def test_crossed_threshold_fails_the_host_with_its_reason(run_opsplay):
    proc = run_opsplay(
        "run",
        "health",
        "--env",
        "lab",
        "--limit",
        "opsplay-lab-1",
        "--json",
        "-e",
        "health_disk_max_percent=0",
    )
    assert proc.code == ExitCode.HOSTS_FAILED, proc.err
    host = summary(proc)["hosts"]["opsplay-lab-1"]
    assert host["failed"] == 1
    assert "disk /" in host["message"]


def test_stock_strategy_on_request(run_opsplay):
    proc = run_opsplay("run", "health", "--env", "lab", "--json", "--strategy", "linear", "-v")
    assert proc.code == ExitCode.OK, proc.err
    assert summary(proc)["strategy"] == "linear"


def test_check_mode_changes_nothing(run_opsplay):
    proc = run_opsplay("run", "health", "--env", "lab", "--check", "--json")
    assert proc.code == ExitCode.OK, proc.err
    doc = summary(proc)
    assert doc["check"] is True
    assert all(h["changed"] == 0 for h in doc["hosts"].values())


def test_unreachable_host(run_opsplay, lab_inventories):
    ghost = lab_inventories / "ghost"
    ghost.mkdir(exist_ok=True)
    (ghost / "hosts.yml").write_text(
        "all:\n  hosts:\n    opsplay-lab-ghost:\n"
        "      ansible_connection: containers.podman.podman\n"
    )
    proc = run_opsplay("run", "health", "--env", "ghost", "--json")
    assert proc.code == ExitCode.HOSTS_UNREACHABLE, proc.err
    assert summary(proc)["hosts"]["opsplay-lab-ghost"]["unreachable"] == 1


def _a_task_ran(state) -> bool:
    for path in state.glob("runs/*/artifacts/*/job_events/*.json"):
        try:
            if json.loads(path.read_text()).get("event") == "runner_on_ok":
                return True
        except ValueError:
            continue  # being written
    return False


def test_interrupt_cancels_the_run(run_opsplay, lab_inventories):
    state = run_opsplay.state
    # in the test's own process group, as before; the SIGINT below goes to opsplay's pid alone
    proc = run_opsplay.start("maintenance", "weekly", "--env", "lab", "--json", new_session=False)
    # once a task has run on a host: the run is connected to its hosts when it is cancelled
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _a_task_ran(state):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    history = {r["what"]: r for r in json.loads(run_opsplay("history", "--json").out)}
    assert history["maintenance weekly"]["status"] == "canceled"
    # nothing of the cancelled run is left running (Mitogen's multiplexers hung on before)
    marker = f"opsplay-{history['maintenance weekly']['id']}-"
    left = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    assert left == "", left
    # weekly is a window: opsplay closed it after the cancel (test_maintenance_window.py)
    assert history["maintenance weekly: close window"]["status"] == "successful"
    # the lock went with the process: the next run is not blocked
    assert run_opsplay("run", "health", "--env", "lab", "--check").code == ExitCode.OK
