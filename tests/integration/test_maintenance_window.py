"""The weekly window on the lab: a failure inside it still turns maintenance mode off, logs the
start and the failed end, fails the host with the original reason, and nginx answers again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from opsplay.errors import ExitCode

HOST = "opsplay-lab-1"
SILENT_LISTENER = (
    "import socket, time; s = socket.socket(); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', 4443)); s.listen(); time.sleep(240)"
)


def on_host(*cmd: str) -> str:
    return subprocess.run(
        ["podman", "exec", HOST, *cmd], capture_output=True, text=True, check=True
    ).stdout


def test_failure_inside_the_window_closes_it(run_opsplay):
    before = on_host("sh", "-c", "cat /var/log/opsplay-maintenance.log 2>/dev/null || true")
    proc = run_opsplay(
        "maintenance",
        "weekly",
        "--env",
        "lab",
        "--limit",
        HOST,
        "--json",
        "-e",
        '{"pg_maintenance_databases": ["no_such_db"]}',
    )
    assert proc.code == ExitCode.HOSTS_FAILED, proc.err
    host = json.loads(proc.out)["hosts"][HOST]
    assert "database no_such_db does not exist" in host["message"]

    log = on_host("cat", "/var/log/opsplay-maintenance.log")[len(before) :].splitlines()
    entries = [json.loads(line) for line in log]
    assert [e["event"] for e in entries] == ["start", "end"]
    assert entries[1]["outcome"] == "failed" and entries[0]["env"] == "lab"
    assert on_host("sh", "-c", "test -e /var/lib/opsplay/maintenance.flag || echo gone") == "gone\n"
    code = on_host("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/")
    assert code == "200"


def test_maintenance_mode_by_hand(run_opsplay):
    assert run_opsplay("maintenance-mode", "on", "--env", "lab", "--limit", HOST).code == 0
    try:
        code = on_host("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/")
        assert code == "503"
    finally:
        assert run_opsplay("maintenance-mode", "off", "--env", "lab", "--limit", HOST).code == 0
    assert (
        on_host("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/") == "200"
    )


def test_interrupt_inside_the_window_turns_maintenance_mode_off(run_opsplay, lab_inventories):
    # `always:` never runs when the run is cancelled; opsplay closes the window itself.
    before = on_host("sh", "-c", "cat /var/log/opsplay-maintenance.log 2>/dev/null || true")
    # Keep the window open long enough to be interrupted inside it, however fast the run is: the
    # certificate check inside the window reads an endpoint that accepts TCP and never answers
    # the TLS handshake (a listening socket nobody serves), so it waits for its 60 s timeout.
    subprocess.run(
        ["podman", "exec", "-d", HOST, "timeout", "240", "python3", "-c", SILENT_LISTENER],
        check=True,
    )
    slow_endpoint = {
        "cert_renewal_endpoints": [{"host": "127.0.0.1", "port": 4443, "server_name": "stall"}],
        "cert_renewal_endpoint_timeout": 60,
    }
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OPSPLAY_")}
    environ.update(
        {"OPSPLAY_INVENTORY_DIR": str(lab_inventories), "OPSPLAY_STATE_DIR": str(run_opsplay.state)}
    )
    proc = subprocess.Popen(
        [
            *[sys.executable, "-m", "opsplay", "maintenance", "weekly", "--env", "lab"],
            *["--limit", HOST, "-e", json.dumps(slow_endpoint)],
        ],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        opened = False
        while not opened and time.monotonic() < deadline and proc.poll() is None:
            opened = (
                subprocess.run(
                    ["podman", "exec", HOST, "test", "-e", "/var/lib/opsplay/maintenance.flag"],
                    check=False,
                ).returncode
                == 0
            )
            time.sleep(0.2)
        assert opened, "the window never opened"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["podman", "exec", HOST, "pkill", "-f", "SO_REUSEADDR"], check=False)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "maintenance mode is off on lab" in err
    assert on_host("sh", "-c", "test -e /var/lib/opsplay/maintenance.flag || echo gone") == "gone\n"
    log = on_host("cat", "/var/log/opsplay-maintenance.log")[len(before) :].splitlines()
    entries = [json.loads(line) for line in log]
    assert [e["event"] for e in entries] == ["start", "end"]
    assert entries[1]["outcome"] == "cancelled"
    assert "(cancelled)" in entries[1]["reason"]
    code = on_host("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/")
    assert code == "200"
