"""`opsplay run security-updates` across the lab: a failed batch stops the rollout; a window
that ends during the rollout starts no further batch."""

from __future__ import annotations

import datetime
import json
import subprocess
import time

from opsplay.errors import ExitCode

from .conftest import LAB_HOSTS, REPO, on_host, version

APT_REPO = REPO / "molecule" / "security_updates" / "apt-repo.sh"


def add_demo_repositories(hosts: list[str]) -> None:
    """Local repositories with v1.1 of the demo packages on each host, v1.0 installed."""
    for host in hosts:
        subprocess.run(["podman", "cp", str(APT_REPO), f"{host}:/tmp/apt-repo.sh"], check=True)
        on_host(host, "sh /tmp/apt-repo.sh")


def remove_demo_packages(hosts: list[str]) -> None:
    for host in hosts:
        on_host(
            host,
            "systemctl disable --now opsplay-demo.service 2>/dev/null;"
            " dpkg --purge $(dpkg-query -W -f '${Package} ' 'opsplay-demo-*') >/dev/null;"
            " rm -rf /srv/opsplay-apt /etc/apt/sources.list.d/opsplay-test.list"
            " /var/run/reboot-required /var/run/reboot-required.pkgs",
        )


def test_unhealthy_first_batch_stops_the_rollout(run_opsplay, lab_inventories):
    hosts = [f"opsplay-lab-{i}" for i in range(1, LAB_HOSTS + 1)]
    first, rest = hosts[0], hosts[1:]
    add_demo_repositories(hosts)
    on_host(first, "systemctl stop nginx")  # the canary's health check fails after its upgrade
    try:
        proc = run_opsplay(
            "run", "security-updates", "--env", "lab", "--yes", "--json",
            "-e", "{security_updates_hold: [opsplay-demo-held]}",
        )  # fmt: skip
        assert proc.code == ExitCode.HOSTS_FAILED, proc.err
        doc = json.loads(proc.out)
        assert doc["hosts"][first]["failed"] == 1
        assert "http://127.0.0.1/" in doc["hosts"][first]["message"]
        # The canary was upgraded and reported; no later batch was upgraded.
        assert version(first, "opsplay-demo-app") == "1.1"
        assert version(first, "opsplay-demo-held") == "1.0"
        upgraded = doc["data"]["security_updates"][first]["upgraded"]
        assert {p["name"]: (p["from"], p["to"]) for p in upgraded} == {
            "opsplay-demo-app": ("1.0", "1.1"),
            "opsplay-demo-reboot": ("1.0", "1.1"),
            "opsplay-demo-svc": ("1.0", "1.1"),
        }
        for host in rest:
            assert version(host, "opsplay-demo-app") == "1.0"
            assert host not in doc["data"]["security_updates"]
            assert doc["hosts"][host]["changed"] == 0  # it only passed the (read-only) gates
    finally:
        on_host(first, "systemctl start nginx")
        remove_demo_packages(hosts)


# apt runs DPkg::Pre-Invoke before dpkg: the canary's upgrade waits there while the hold file
# exists (at most 120 s), after saying so. The window's plan and checks never call dpkg through apt.
HOLD_HOOK = "/etc/apt/apt.conf.d/99opsplay-test-hold"
HOLD_CONF = (
    'DPkg::Pre-Invoke {"touch /tmp/opsplay-test-waiting; i=0;'
    ' while [ -e /tmp/opsplay-test-hold ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done";};'
)


def wait_for(what: str, check, proc: subprocess.Popen, limit: float = 180) -> None:
    """Poll ``check()`` until true; fail naming ``what`` if the run ends first or at ``limit``."""
    deadline = time.monotonic() + limit
    while not check():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}: {out}{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {limit} s")
        time.sleep(0.2)


def test_a_window_ending_during_the_rollout_starts_no_further_batch(run_opsplay, lab_inventories):
    # Batches of one: the canary starts inside the window; its upgrade is held (an apt hook)
    # until the window's end has passed, so the second batch can only start after the end. It
    # is not started: it fails in one line, the rollout stops, and its packages are untouched.
    hosts = [f"opsplay-lab-{i}" for i in range(1, LAB_HOSTS + 1)]
    first, rest = hosts[0], hosts[1:]
    add_demo_repositories(hosts)
    on_host(first, f"printf '%s\\n' '{HOLD_CONF}' > {HOLD_HOOK}; touch /tmp/opsplay-test-hold")
    on_host(first, "rm -f /tmp/opsplay-test-waiting")
    # Ends well after the canary's start (the run's start-up and gates take a few seconds).
    stop = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(
        seconds=30
    )
    stop_at = stop.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        proc = run_opsplay.start(
            "run", "security-updates", "--env", "lab", "--yes", "--json",
            "-e", "{security_updates_hold: [opsplay-demo-held], preflight_gates: [disk]}",
            "-e", "{security_updates_batches: [1, 1]}",
            "-e", f"security_updates_stop_at={stop_at}",
        )  # fmt: skip
        try:
            wait_for(
                "the canary's upgrade",
                lambda: on_host(first, "ls /tmp/opsplay-test-waiting 2>/dev/null || true") != "",
                proc,
            )
            while datetime.datetime.now(datetime.UTC) <= stop:  # the window ends
                time.sleep(0.2)
            on_host(first, "rm -f /tmp/opsplay-test-hold")
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == ExitCode.HOSTS_FAILED, err
        doc = json.loads(out)
        # The canary started inside the window: upgraded and reported.
        assert doc["hosts"][first]["failed"] == 0, doc["hosts"][first]
        assert version(first, "opsplay-demo-app") == "1.1"
        assert first in doc["data"]["security_updates"]
        ended = f"not started: the window ended at {stop:%Y-%m-%d %H:%M:%S} (UTC)"
        for host in rest:
            assert doc["hosts"][host]["failed"] == 1, doc["hosts"][host]
            assert doc["hosts"][host]["message"] == ended
            assert version(host, "opsplay-demo-app") == "1.0"
            assert host not in doc["data"]["security_updates"]
    finally:
        on_host(first, f"rm -f {HOLD_HOOK} /tmp/opsplay-test-hold /tmp/opsplay-test-waiting")
        remove_demo_packages(hosts)


def test_weekly_refuses_security_updates_when_the_backup_is_too_old(run_opsplay):
    # The window takes the pre-window backup; with a 0 s limit it is too old by the time the
    # security updates come: the backup gate refuses every db host and names itself. (Not 1 s:
    # the age is in whole seconds from the backup's end, and on the lab the gate came 1.46 s
    # after it, age 1, not over 1. Age 0 needs the gate within a second of the dump's end, with
    # the backup's verification, its report and the whole window between them.)
    proc = run_opsplay(
        "maintenance", "weekly", "--env", "lab", "--json", "-e", "{preflight_backup_max_age: 0}"
    )
    assert proc.code == ExitCode.HOSTS_FAILED, proc.err
    doc = json.loads(proc.out)
    for host, row in doc["hosts"].items():
        assert row["failed"] == 1, (host, row)
        assert row["message"].startswith("refused security updates: gate backup: "), row
        assert "newest verified backup" in row["message"] and "(max 0 s)" in row["message"]
        assert row["failed_task"] == "Pass the gates"
    assert "security_updates" not in doc["data"]  # no host reached the rollout
