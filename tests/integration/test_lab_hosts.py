"""`opsplay lab up` against podman's own view of the lab containers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .conftest import LAB_HOSTS


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False)


def test_lab_up_recreates_a_host_whose_processes_died_behind_podmans_back(lab_inventories):
    # What a torn-down session leaves: conmon and the container's init killed, podman's
    # database still saying "running", every exec failing. `lab up` must not trust it.
    name = f"opsplay-lab-{LAB_HOSTS}"
    pids = podman("inspect", "--format", "{{.State.ConmonPid}} {{.State.Pid}}", name).stdout
    for pid in pids.split():
        os.kill(int(pid), signal.SIGKILL)
    assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "running"
    assert podman("exec", name, "true").returncode != 0

    opsplay = [sys.executable, "-m", "opsplay", "--inventory-dir", str(lab_inventories)]
    up = subprocess.run(
        [*opsplay, "lab", "up", "--hosts", str(LAB_HOSTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    assert f"starting {name}" in up.stderr + up.stdout
    state = podman("exec", name, "systemctl", "is-system-running").stdout.strip()
    assert state in {"running", "degraded"}


def test_lab_up_counts_a_host_in_maintenance_mode_as_ready(lab_inventories):
    # nginx answers 503 in maintenance mode: up, just not serving the app.
    opsplay = [sys.executable, "-m", "opsplay", "--inventory-dir", str(lab_inventories)]
    name = "opsplay-lab-1"
    on = [*opsplay, "maintenance-mode", "on", "--env", "lab", "--limit", name]
    subprocess.run(on, check=True, capture_output=True)
    try:
        code = podman("exec", name, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                      "http://127.0.0.1/").stdout  # fmt: skip
        assert code == "503"
        up = subprocess.run(
            [*opsplay, "lab", "up", "--hosts", str(LAB_HOSTS)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert up.returncode == 0, up.stderr
        assert f"{name} is ready" in up.stderr + up.stdout
    finally:
        off = [*opsplay, "maintenance-mode", "off", "--env", "lab", "--limit", name]
        subprocess.run(off, check=True, capture_output=True)
