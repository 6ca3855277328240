"""The weekly window on the lab: a failure inside it still turns maintenance mode off, logs the
start and the failed end, fails the host with the original reason, and nginx answers again; a
window left open (opsplay killed inside it, the host gone while it was open) is named by health
and status and closed by the next weekly with outcome abandoned."""

from __future__ import annotations

import calendar
import json
import os
import signal
import subprocess
import time

from opsplay.errors import ExitCode

HOST = "opsplay-lab-1"
SILENT_LISTENER = (
    "import socket, time; s = socket.socket(); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', 4443)); s.listen(); time.sleep(240)"
)


FLAG = "/var/lib/opsplay/maintenance.flag"
LOG = "/var/log/opsplay-maintenance.log"


def on_host(*cmd: str) -> str:
    return subprocess.run(
        ["podman", "exec", HOST, *cmd], capture_output=True, text=True, check=True
    ).stdout


def site_status() -> str:
    return on_host("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/")


def log_text() -> str:
    return on_host("sh", "-c", f"cat {LOG} 2>/dev/null || true")


def new_entries(before: str) -> list[dict]:
    return [json.loads(line) for line in log_text()[len(before) :].splitlines()]


def flag_exists() -> bool:
    probe = subprocess.run(["podman", "exec", HOST, "test", "-e", FLAG], check=False)
    return probe.returncode == 0


def weekly_inside_the_window(
    run_opsplay, lab_inventories, in_certificate_check: bool = False
) -> subprocess.Popen:
    """A weekly on HOST as its own process group, returned once its window is open (with
    ``in_certificate_check``: once the run waits in the window's certificate check).

    The window stays open long enough to act inside it, however fast the run is: the
    certificate check inside it reads an endpoint that accepts TCP and never answers the TLS
    handshake (a listening socket nobody serves), so it waits for its 60 s timeout.
    """
    subprocess.run(
        ["podman", "exec", "-d", HOST, "timeout", "240", "python3", "-c", SILENT_LISTENER],
        check=True,
    )
    slow_endpoint = {
        "cert_renewal_endpoints": [{"host": "127.0.0.1", "port": 4443, "server_name": "stall"}],
        "cert_renewal_endpoint_timeout": 60,
    }
    proc = run_opsplay.start(
        *["maintenance", "weekly", "--env", "lab", "--limit", HOST],
        *["-e", json.dumps(slow_endpoint)],
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        # in_certificate_check: the run waits there for its 60 s timeout, so what the test does
        # next cannot land in another step (stopping the host during the vacuum would fail
        # that step instead of making the host unreachable)
        if flag_exists() and (not in_certificate_check or certificate_check_stalled()):
            return proc
        time.sleep(0.2)
    proc.kill()
    _out, err = proc.communicate()
    raise AssertionError(f"the window never opened: {err[-2000:]}")


def certificate_check_stalled() -> bool:
    """The window's certificate check holds a connection to the silent listener (port 4443)."""
    probe = subprocess.run(
        ["podman", "exec", HOST, "ss", "-Htn", "state", "established", "( sport = :4443 )"],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(probe.stdout.strip())


def stop_listener() -> None:
    subprocess.run(["podman", "exec", HOST, "pkill", "-f", "SO_REUSEADDR"], check=False)


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
    before = log_text()
    proc = weekly_inside_the_window(run_opsplay, lab_inventories)
    try:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_listener()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "maintenance mode is off on lab" in err
    assert not flag_exists()
    entries = new_entries(before)
    assert [e["event"] for e in entries] == ["start", "end"]
    assert entries[1]["outcome"] == "cancelled"
    assert "(cancelled)" in entries[1]["reason"]
    assert site_status() == "200"
    assert no_expiry_timer(HOST)  # the close after Ctrl-C disarmed the dead-man switch


def _no_process_of(run_dir_marker: str) -> bool:
    found = subprocess.run(["pgrep", "-f", run_dir_marker], capture_output=True, check=False)
    return found.returncode != 0


def test_sigkill_inside_the_window_then_the_next_weekly_closes_it(run_opsplay, lab_inventories):
    # kill -9 of the whole opsplay process group: nothing of it runs `always:` or closes the
    # window. The next weekly (under the environment lock, so the killed run is gone) closes it
    # first with outcome abandoned, then runs its own window.
    before = log_text()
    # killed while the run waits, silent, in the window's certificate check: nothing it prints
    # can end it, only opsplay's death
    proc = weekly_inside_the_window(run_opsplay, lab_inventories, in_certificate_check=True)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        (killed,) = [run.name for run in (run_opsplay.state / "runs").iterdir()]
        # ansible-playbook runs in a session of its own (a pty that ignores SIGHUP) and its
        # command line names the run's ID; it and its forks must die with opsplay, or the next
        # run, no longer locked out, could overlap it. The certificate check waits 60 s: 15 s
        # tells a run that died with opsplay from one that went on.
        deadline = time.monotonic() + 15
        while not _no_process_of(killed) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = subprocess.run(["pgrep", "-af", killed], capture_output=True, text=True)
        assert _no_process_of(killed), f"a process of the killed run still runs: {survivors.stdout}"
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_listener()
    assert flag_exists() and site_status() == "503"
    assert [e["event"] for e in new_entries(before)] == ["start"]  # the log holds the window

    weekly = run_opsplay("maintenance", "weekly", "--env", "lab", "--limit", HOST, "--json")
    assert weekly.code == ExitCode.OK, weekly.err
    entries = new_entries(before)
    assert [e["event"] for e in entries] == ["start", "end", "start", "end"], entries
    assert entries[1]["outcome"] == "abandoned"
    assert entries[0]["run_id"] == entries[1]["run_id"] == killed
    assert entries[1]["closed_by_run_id"] == json.loads(weekly.out)["id"]
    assert entries[2]["run_id"] == json.loads(weekly.out)["id"]
    assert entries[3]["outcome"] == "ok"
    assert not flag_exists() and site_status() == "200"
    # the killed run's timer was armed: closing its window as abandoned disarmed it
    assert entries[0]["deadline"] and no_expiry_timer(HOST)


def test_host_stopped_inside_the_window_then_status_and_the_next_weekly(
    run_opsplay, lab_inventories
):
    before = log_text()
    proc = weekly_inside_the_window(run_opsplay, lab_inventories, in_certificate_check=True)
    try:
        subprocess.run(["podman", "stop", HOST], check=True, capture_output=True)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        start_host()
    assert proc.returncode == ExitCode.HOSTS_UNREACHABLE, err
    assert f"opsplay maintenance-mode off --env lab --limit {HOST}" in err
    assert flag_exists() and site_status() == "503"
    window = json.loads(on_host("cat", FLAG))

    status = run_opsplay("status", "--env", "lab", "--limit", HOST, "--json")
    assert status.code == ExitCode.OK, status.err
    row = json.loads(status.out)["hosts"][HOST]
    assert row["maintenance"]["time"] == window["time"]
    assert row["maintenance"]["run_id"] == window["run_id"] != ""
    table = run_opsplay("status", "--env", "lab", "--limit", HOST)
    assert f"since {window['time']} (run {window['run_id']})" in table.out
    prom = (run_opsplay.metrics / "opsplay-lab.prom").read_text()  # prometheus_client's text
    assert f'opsplay_maintenance_mode{{env="lab",host="{HOST}"}} 1.0' in prom.splitlines()

    health = run_opsplay("run", "health", "--env", "lab", "--limit", HOST, "--json")
    assert health.code == ExitCode.HOSTS_FAILED
    assert (
        f"returned 503: in maintenance mode since {window['time']} (run {window['run_id']}, "
        "weekly maintenance)" in json.loads(health.out)["hosts"][HOST]["message"]
    )

    weekly = run_opsplay("maintenance", "weekly", "--env", "lab", "--limit", HOST, "--json")
    assert weekly.code == ExitCode.OK, weekly.err
    entries = new_entries(before)
    assert [e["event"] for e in entries] == ["start", "end", "start", "end"], entries
    assert entries[1]["outcome"] == "abandoned" and entries[1]["run_id"] == window["run_id"]
    assert not flag_exists() and site_status() == "200"


WEB_HOSTS = ("opsplay-lab-1", "opsplay-lab-2")
EXPIRE_UNITS = "opsplay-maintenance-expire*"


def status_of(host: str) -> str:
    probe = subprocess.run(
        [*["podman", "exec", host], "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
         "http://127.0.0.1/"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return probe.stdout


# The dead-man test's switch: any duration above 0 is accepted (maintenance_deadman.parse_duration);
# 20 s outlasts the seconds from both windows open to the kill (asserted: the kill comes before
# each window's recorded deadline) and keeps the test's wait short (60 s until 2026-12-01).
DEADMAN_MAX_DURATION = 20


def test_sigkill_inside_the_window_the_dead_man_switch_closes_it(run_opsplay, lab_inventories):
    # Issue 18 item 2: nothing of opsplay survives a kill -9 of its process group, and no run
    # follows; each web host's own timer turns maintenance mode off at the window's deadline.
    before = {host: on_host_of(host, f"cat {LOG} 2>/dev/null || true") for host in WEB_HOSTS}
    for host in WEB_HOSTS:  # the window's certificate check stalls (see weekly_inside_the_window)
        subprocess.run(
            ["podman", "exec", "-d", host, "timeout", "240", "python3", "-c", SILENT_LISTENER],
            check=True,
        )
    slow = {
        "cert_renewal_endpoints": [{"host": "127.0.0.1", "port": 4443, "server_name": "stall"}],
        "cert_renewal_endpoint_timeout": 60,
        "maintenance_mode_max_duration": DEADMAN_MAX_DURATION,
    }
    proc = run_opsplay.start("maintenance", "weekly", "--env", "lab", "-e", json.dumps(slow))
    try:
        deadline = time.monotonic() + 180
        while not all(flag_on(host) for host in WEB_HOSTS):
            assert proc.poll() is None and time.monotonic() < deadline, "the windows never opened"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()
        proc.communicate(timeout=60)
        first_200 = {}
        while len(first_200) < len(WEB_HOSTS) and time.monotonic() < killed_at + 90:
            for host in WEB_HOSTS:
                if host not in first_200 and status_of(host) == "200":
                    first_200[host] = time.monotonic() - killed_at
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        for host in WEB_HOSTS:
            subprocess.run(["podman", "exec", host, "pkill", "-f", "SO_REUSEADDR"], check=False)
        break_leases_left(run_opsplay)
    print(f"SIGKILL -> first 200 (s): {first_200}")  # issue 18's closing note reports it
    assert set(first_200) == set(WEB_HOSTS), first_200
    for host in WEB_HOSTS:
        log = on_host_of(host, f"cat {LOG}")[len(before[host]) :].splitlines()
        start, end = (json.loads(line) for line in log[-2:])
        assert start["event"] == "start" and start["run_id"] == end["run_id"], log
        assert end["outcome"] == "expired" and end["deadline"] == start["deadline"], end
        # the kill came inside the window: its switch fired after it, not before
        deadline = calendar.timegm(time.strptime(start["deadline"], "%Y-%m-%dT%H:%M:%SZ"))
        assert killed_wall < deadline, (host, start["deadline"], killed_wall)
        assert not flag_on(host) and no_expiry_timer(host)
    assert run_opsplay("run", "health", "--env", "lab").code == ExitCode.OK


def break_leases_left(run_opsplay) -> None:
    """The killed run's host leases (issue 18 item 1) would hold the lab for their TTL: broken."""
    lease = "/var/lib/opsplay/lease.json"
    if any(on_host_of(host, f"test -e {lease} && echo held || true") for host in WEB_HOSTS):
        unlocked = run_opsplay("unlock", "--env", "lab", "--yes")
        assert unlocked.code == ExitCode.OK, unlocked.err


def no_expiry_timer(host: str) -> bool:
    return on_host_of(host, f"systemctl list-units --all --no-legend '{EXPIRE_UNITS}'") == ""


def flag_on(host: str) -> bool:
    return subprocess.run(["podman", "exec", host, "test", "-e", FLAG], check=False).returncode == 0


def on_host_of(host: str, script: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout


def start_host() -> None:
    """Start HOST again and wait until it serves (systemd booted, nginx answers)."""
    subprocess.run(["podman", "start", HOST], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [
                *["podman", "exec", HOST, "sh", "-c"],
                "systemctl is-system-running --wait >/dev/null 2>&1;"
                " pg_isready -q -h 127.0.0.1 && curl -s -o /dev/null http://127.0.0.1/",
            ],
            check=False,
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{HOST} did not come back")
