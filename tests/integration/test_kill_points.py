"""Cancelled and killed runs, one test per kill point (issue 18 item 4).

Whatever ends the run, the lab hosts end in a safe state: no host left in maintenance mode (no
flag, the site answers 200, the maintenance log's last entry is an end), no lease left after its
TTL, no half-written backup under a final name. The kill points already covered elsewhere are not
repeated here: Ctrl-C inside a window and kill -9 of opsplay's whole process group (dead-man
switch) in test_maintenance_window.py, a kill -9'd run's lease in test_leases.py. Here: SIGTERM to
opsplay alone, kill -9 of its ansible-playbook child alone, kill -9 of the whole group during a
backup, and `podman kill` of AWX's worker container (ansible-runner worker in the EE).

Every run gets a short lease TTL (opsplay_lease_ttl=40) and a short dead-man switch
(maintenance_mode_max_duration=60); the two kill points that wait for them have shorter ones still
(the backup's lease 20 s; the AWX job's dead-man switch 20 s and lease 40 s), so the tests wait
less than a minute for what they prove. The issue's own dead-man test is test_maintenance_window's
(issue 18 says a 60 s deadline; it runs with 20 s). The windows stay open long enough to act
inside them: their certificate check reads an endpoint that never answers the TLS handshake (see
test_maintenance_window.weekly_inside_the_window). Waits are bounded polls; the measured times
(kill -> 200) are printed for the issue's closing note.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from opsplay.errors import ExitCode, OpsplayError
from opsplay.lab.ee import ensure_ee

from .test_awx_ee import (
    IDENT,
    PLAYBOOK,
    RUNNER,
    WORKER,
    private_data_dir,
    ssh_lab,  # noqa: F401  (a fixture)
)
from .test_leases import lease_on, wait_for
from .test_maintenance_window import (
    LOG,
    SILENT_LISTENER,
    WEB_HOSTS,
    flag_on,
    no_expiry_timer,
    on_host_of,
    status_of,
)

TTL = 40
MAX_DURATION = 60
SHORT = {"opsplay_lease_ttl": TTL, "maintenance_mode_max_duration": MAX_DURATION}
# The AWX job's switch fires 20 s after its windows open (the kill comes a second after they
# are seen open); its leases, taken 6-14 s before them (measured at TTL 90: expired 84 s after
# the kill on a quiet machine, 75.6 s at a load of 7; 43.1 s at TTL 50, load 27), expire 26-34 s
# after the kill: after the switch, and long after the run refused right after the kill
# (seconds). The test waits for the later of the two (was 30 s and 50 s until 2026-12-01).
AWX_MAX_DURATION = 20
AWX_TTL = 40
# The backup's lease: only its expiry is waited for (the killed run's module may still finish
# on the host meanwhile); 20 s outlasts the kill, which comes seconds after the lease is taken.
BACKUP_TTL = 20
STALL = {
    "cert_renewal_endpoints": [{"host": "127.0.0.1", "port": 4443, "server_name": "stall"}],
    "cert_renewal_endpoint_timeout": 60,
}
EE_NAME = "opsplay-kill-point-worker"
DB_HOST = "opsplay-lab-1"
DB = "killpoint"
DB_ROWS = 2_000_000  # pg_dump takes seconds: a kill lands inside it
BACKUPS = "/var/backups/postgresql"

# Every non-hidden file of a backup set belongs to a backup whose manifest is there; a dump
# under way is hidden (.NAME.tmp). Prints the files breaking that (module_utils/backup_manifest).
HALF_WRITTEN = r"""
import os, sys
root = sys.argv[1]
for sub in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    folder = os.path.join(root, sub)
    if sub.startswith(".") or not os.path.isdir(folder):
        continue
    entries = set(os.listdir(folder))
    for entry in sorted(entries):
        if entry.startswith(".") or entry.endswith(".json"):
            continue
        archive = entry[: -len(".sha256")] if entry.endswith(".sha256") else entry
        if entry.endswith(".tmp") or archive + ".json" not in entries:
            print(os.path.join(folder, entry))
"""


# -- helpers ----------------------------------------------------------------------------------


def start_listeners(hosts=WEB_HOSTS) -> None:
    for host in hosts:
        subprocess.run(
            ["podman", "exec", "-d", host, "timeout", "300", "python3", "-c", SILENT_LISTENER],
            check=True,
        )


def stop_listeners(hosts=WEB_HOSTS) -> None:
    for host in hosts:
        subprocess.run(["podman", "exec", host, "pkill", "-f", "SO_REUSEADDR"], check=False)


def logs(hosts=WEB_HOSTS) -> dict[str, str]:
    return {host: on_host_of(host, f"cat {LOG} 2>/dev/null || true") for host in hosts}


def new_entries(host: str, before: str) -> list[dict]:
    text = on_host_of(host, f"cat {LOG}")[len(before) :]
    return [json.loads(line) for line in text.splitlines()]


def weekly_with_open_windows(run_opsplay) -> subprocess.Popen:
    """The weekly on both web hosts, returned once both windows are open."""
    start_listeners()
    proc = run_opsplay.start(
        "maintenance", "weekly", "--env", "lab", "-e", json.dumps({**STALL, **SHORT})
    )
    deadline = time.monotonic() + 240
    while not all(flag_on(host) for host in WEB_HOSTS):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            _out, err = proc.communicate()
            raise AssertionError(f"the windows never opened: {err[-2000:]}")
        time.sleep(0.2)
    return proc


def seconds_to_200(killed_at: float, bound: float, hosts=WEB_HOSTS) -> dict[str, float]:
    """host -> seconds from the kill to its first 200 answer (bounded poll; hosts that never
    answered within ``bound`` seconds of the kill are missing)."""
    first = {}
    while len(first) < len(hosts) and time.monotonic() < killed_at + bound:
        for host in hosts:
            if host not in first and status_of(host) == "200":
                first[host] = round(time.monotonic() - killed_at, 1)
        time.sleep(0.2)
    return first


def assert_windows_closed(before: dict[str, str], outcomes: set[str]) -> dict[str, str]:
    """Every web host: no flag, 200, no dead-man timer left, the log's last entry an end (of
    the window this test opened) with one of ``outcomes``; host -> that outcome."""
    found = {}
    for host in WEB_HOSTS:
        entries = new_entries(host, before[host])
        assert entries and entries[0]["event"] == "start", (host, entries)
        last = entries[-1]
        assert last["event"] == "end" and last["outcome"] in outcomes, (host, entries)
        assert last["run_id"] == entries[0]["run_id"], (host, entries)
        assert not flag_on(host) and status_of(host) == "200", host
        assert no_expiry_timer(host), host
        found[host] = last["outcome"]
    return found


def no_process_of(run_id: str) -> bool:
    return subprocess.run(["pgrep", "-f", run_id], capture_output=True).returncode != 0


def lease_expired(host: str) -> bool:
    lease = lease_on(host)
    if lease is None:
        return True
    expires = dt.datetime.strptime(lease["expires"], "%Y-%m-%dT%H:%M:%SZ")
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) > expires


def drain(proc: subprocess.Popen) -> threading.Thread:
    """Read the run's output in a thread (a full pipe would stop opsplay while the test polls
    the hosts); ``.join()`` it, then ``proc.returncode`` and ``thread.err`` are there."""

    def read() -> None:
        thread.err = proc.communicate()[1]  # type: ignore[attr-defined]

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def other_state(tmp_path: Path) -> dict[str, str]:
    return {"OPSPLAY_STATE_DIR": str(tmp_path / "other-state")}


# -- 1. SIGTERM to opsplay (not its group) inside the window -----------------------------------


def test_sigterm_to_opsplay_inside_the_window_cancels_and_closes_it(run_opsplay):
    before = logs()
    proc = weekly_with_open_windows(run_opsplay)
    try:
        proc.send_signal(signal.SIGTERM)  # opsplay alone, as `kill PID` or systemd's stop would
        killed_at = time.monotonic()
        output = drain(proc)
        first_200 = seconds_to_200(killed_at, 180)
        output.join(timeout=300)
        ended = round(time.monotonic() - killed_at, 1)
        err = getattr(output, "err", "")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stop_listeners()
    print(f"SIGTERM -> first 200 (s): {first_200}; opsplay exited {proc.returncode} after {ended}")
    assert proc.returncode == ExitCode.INTERRUPTED, err[-3000:]
    assert "maintenance mode is off on lab" in err
    assert set(first_200) == set(WEB_HOSTS), first_200
    assert assert_windows_closed(before, {"cancelled"})
    assert all(lease_on(host) is None for host in WEB_HOSTS)  # released, not left to expire
    killed = new_entries(WEB_HOSTS[0], before[WEB_HOSTS[0]])[0]["run_id"]
    wait_for(lambda: no_process_of(killed), "the cancelled run's processes to end", limit=60)


# -- 2. kill -9 of the ansible-playbook child only, inside the window --------------------------


def ansible_playbook_of(proc: subprocess.Popen) -> int:
    """The ansible-playbook that opsplay (``proc``) runs: its direct child (ansible-runner
    starts it through pexpect, in a session of its own, so not in opsplay's process group)."""
    found: list[str] = []

    def child() -> bool:
        probe = subprocess.run(
            ["pgrep", "-P", str(proc.pid), "-f", "ansible-playbook"],
            capture_output=True,
            text=True,
        )
        found[:] = probe.stdout.split()
        return len(found) == 1

    wait_for(child, "opsplay's ansible-playbook", limit=30)
    return int(found[0])


def test_sigkill_of_ansible_playbook_inside_the_window(run_opsplay, tmp_path):
    before = logs()
    proc = weekly_with_open_windows(run_opsplay)
    try:
        os.kill(ansible_playbook_of(proc), signal.SIGKILL)
        killed_at = time.monotonic()
        output = drain(proc)
        first_200 = seconds_to_200(killed_at, MAX_DURATION + 90)
        output.join(timeout=300)
        err = getattr(output, "err", "")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stop_listeners()
    # opsplay outlives its ansible-playbook and closes the window itself (outcome cancelled),
    # not the dead-man switch a minute later (expired)
    outcomes = assert_windows_closed(before, {"cancelled"})
    leases = {host: lease_on(host) for host in WEB_HOSTS}
    print(
        f"kill -9 ansible-playbook: opsplay exited {proc.returncode}; "
        f"first 200 (s): {first_200}; window outcomes: {outcomes}; "
        f"leases after opsplay: {leases}; opsplay's own lines: "
        f"{[line for line in err.splitlines() if line.startswith('opsplay: ')]}"
    )
    # opsplay itself survives the kill and says so in one line, exit 1
    assert proc.returncode == ExitCode.ERROR, err[-3000:]
    assert "opsplay: ansible-playbook ended without its recap" in err, err[-3000:]
    assert set(first_200) == set(WEB_HOSTS), first_200
    # and releases the killed run's leases: another controller runs at once
    assert leases == {host: None for host in WEB_HOSTS}, leases
    after = run_opsplay("run", "rotate-logs", "--env", "lab", env=other_state(tmp_path))
    assert after.code == ExitCode.OK, after.err[-3000:]
    assert all(lease_on(host) is None for host in WEB_HOSTS)
    killed = new_entries(WEB_HOSTS[0], before[WEB_HOSTS[0]])[0]["run_id"]
    wait_for(lambda: no_process_of(killed), "the killed run's processes to end", limit=60)


# -- 3. kill -9 of the whole opsplay group during the backup -----------------------------------


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        ["podman", "exec", DB_HOST, "runuser", "-u", "postgres", "--",
         "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def half_written() -> list[str]:
    """The files under a final name in a backup set without their manifest, or a .tmp."""
    probe = subprocess.run(
        ["podman", "exec", DB_HOST, "python3", "-c", HALF_WRITTEN, BACKUPS],
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stdout.split()


def dump_under_way() -> bool:
    """A dump of DB is being written under its hidden temporary name, and is not empty yet."""
    listing = on_host_of(
        DB_HOST, f"find {BACKUPS}/{DB} -name '.*.tmp' -size +0 2>/dev/null || true"
    )
    return bool(listing.strip())


def pg_dump_running() -> bool:
    probe = subprocess.run(["podman", "exec", DB_HOST, "pgrep", "-f", f"pg_dump.*{DB}"])
    return probe.returncode == 0


def drop_db() -> None:
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    on_host_of(DB_HOST, f"rm -rf {BACKUPS}/{DB}")


def test_sigkill_of_the_group_during_the_backup_leaves_no_half_written_backup(run_opsplay):
    drop_db()
    psql(f"CREATE DATABASE {DB}")
    rows = f"SELECT g AS id, md5(g::text) AS v FROM generate_series(1, {DB_ROWS}) g"
    psql(f"CREATE TABLE t AS {rows}", DB)
    only_db = {
        "pg_backup_databases": [DB],
        "pg_backup_globals": False,
        "pg_backup_offsite_host": "",
        "opsplay_lease_ttl": BACKUP_TTL,
    }
    backup = ["run", "backup", "--env", "lab", "--limit", DB_HOST, "--yes"]
    backup += ["-e", json.dumps(only_db)]
    try:
        proc = run_opsplay.start(*backup)
        try:
            wait_for(lambda: dump_under_way() or proc.poll() is not None, "the dump", limit=300)
            assert proc.poll() is None, "the backup ended before its dump was seen"
            os.killpg(proc.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        right_after = half_written()
        # whatever of the killed run still works (ansible-playbook, in a session of its own, its
        # connection; pg_dump into the .tmp on the host) ends
        (killed,) = [run.name for run in (run_opsplay.state / "runs").iterdir()]
        wait_for(lambda: no_process_of(killed), "the killed run's processes to end", limit=60)
        wait_for(lambda: not pg_dump_running(), "the orphaned pg_dump to end", limit=300)
        dump_ended = round(time.monotonic() - killed_at, 1)
        leftovers = on_host_of(DB_HOST, f"ls -A {BACKUPS}/{DB}").split()
        print(f"kill -9 during the dump: pg_dump gone {dump_ended} s after; left: {leftovers}")
        assert right_after == [] and half_written() == [], (right_after, half_written())
        # what the killed run left under a final name, if anything, is a whole verified backup
        # (its module may finish on the host after the controller is gone)
        for name in [n for n in leftovers if n.endswith(".json") and not n.startswith(".")]:
            doc = json.loads(on_host_of(DB_HOST, f"cat {BACKUPS}/{DB}/{name}"))
            size = on_host_of(DB_HOST, f"stat -c %s {BACKUPS}/{DB}/{doc['name']}").strip()
            assert doc["verified"]["ok"] is True and int(size) == doc["size_bytes"], doc
        assert lease_on(DB_HOST) is not None  # the killed run's lease, until its TTL

        wait_for(lambda: lease_expired(DB_HOST), "the lease's expiry", limit=BACKUP_TTL + 60)
        again = run_opsplay(*backup, "--json")
        assert again.code == ExitCode.OK, again.out[-2000:] + again.err[-2000:]
        assert half_written() == [] and lease_on(DB_HOST) is None
        names = on_host_of(DB_HOST, f"ls -A {BACKUPS}/{DB}").split()
        assert not [n for n in names if n.endswith(".tmp")], names  # the leftovers cleaned
        newest = max(n for n in names if n.endswith(".json"))  # names end in a UTC stamp
        assert newest not in leftovers, names  # this run made its own backup
        doc = json.loads(on_host_of(DB_HOST, f"cat {BACKUPS}/{DB}/{newest}"))
        assert doc["verified"]["ok"] is True, doc
    finally:
        drop_db()


# -- 4. the AWX worker container killed inside the window --------------------------------------


@pytest.fixture(scope="module")
def ee_or_skip() -> str:
    try:
        return ensure_ee(progress=print)
    except OpsplayError as exc:
        pytest.skip(f"the execution environment image cannot be built here: {exc}")


def start_worker(data: Path, image: str, log: Path) -> list[subprocess.Popen]:
    """transmit | podman run --name EE_NAME ... worker | process, as test_awx_ee runs it, with
    a container name to kill."""
    transmit = subprocess.Popen(
        [str(RUNNER), "transmit", str(data), "-p", PLAYBOOK, "--ident", IDENT],
        stdout=subprocess.PIPE,
    )
    worker = subprocess.Popen(
        ["podman", "run", "-i", "--rm", "--name", EE_NAME, "--network", "host", image, *WORKER],
        stdin=transmit.stdout,
        stdout=subprocess.PIPE,
    )
    assert transmit.stdout is not None and worker.stdout is not None
    transmit.stdout.close()
    with log.open("w") as out:  # the job's output (a pipe could fill and stop it)
        process = subprocess.Popen(
            [str(RUNNER), "process", str(data), "--ident", IDENT],
            stdin=worker.stdout,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    worker.stdout.close()
    return [transmit, worker, process]


def test_awx_worker_killed_inside_the_window(ee_or_skip, ssh_lab, run_opsplay, tmp_path):  # noqa: F811
    hosts = sorted(yaml.safe_load((ssh_lab / "hosts.yml").read_text())["all"]["hosts"])
    assert set(hosts) == set(WEB_HOSTS), hosts
    assert all(lease_on(host) is None for host in hosts), "a lease left by an earlier run"
    data = private_data_dir(tmp_path / "job", ssh_lab)
    extravars = json.loads((data / "env" / "extravars").read_text())
    (data / "env" / "extravars").write_text(
        json.dumps(
            {
                **extravars,
                **STALL,
                "opsplay_lease_ttl": AWX_TTL,
                "maintenance_mode_max_duration": AWX_MAX_DURATION,
            }
        )
    )
    before = logs()
    start_listeners()
    subprocess.run(["podman", "rm", "-f", EE_NAME], capture_output=True, check=False)
    job_log = tmp_path / "process.out"
    pipe = start_worker(data, ee_or_skip, job_log)
    try:
        wait_for(
            lambda: all(flag_on(h) for h in hosts) or pipe[2].poll() is not None,
            "the windows to open",
            limit=300,
        )
        assert all(flag_on(h) for h in hosts), job_log.read_text()[-3000:]
        subprocess.run(["podman", "kill", EE_NAME], check=True, capture_output=True)
        killed_at = time.monotonic()
        codes = [p.wait(timeout=120) for p in pipe]
        held = {host: (lease_on(host) or {}).get("run_id") for host in hosts}
        refused = run_opsplay("run", "rotate-logs", "--env", "lab", env=other_state(tmp_path))
        first_200 = seconds_to_200(killed_at, AWX_MAX_DURATION + 90)
    finally:
        for p in pipe:
            if p.poll() is None:
                p.kill()
        subprocess.run(["podman", "rm", "-f", EE_NAME], capture_output=True, check=False)
        stop_listeners()
    print(f"podman kill worker -> first 200 (s): {first_200}; transmit/worker/process: {codes}")
    # nothing released them: each lease names AWX's job, as the maintenance log does (awx-4242)
    job = new_entries(hosts[0], before[hosts[0]])[0]["run_id"]
    assert job == "awx-4242", job
    assert held == {host: job for host in hosts}, held
    assert refused.code == ExitCode.LOCKED and f"(run {job}, " in refused.err, refused.err
    assert set(first_200) == set(WEB_HOSTS), first_200
    assert assert_windows_closed(before, {"expired"})
    wait_for(lambda: all(lease_expired(h) for h in hosts), "the leases' expiry", limit=AWX_TTL + 60)
    print(f"leases expired {round(time.monotonic() - killed_at, 1)} s after the kill")
    allowed = run_opsplay("run", "rotate-logs", "--env", "lab", env=other_state(tmp_path))
    assert allowed.code == ExitCode.OK, allowed.err[-3000:]
    assert all(lease_on(host) is None for host in hosts)
