"""`opsplay run security-updates` across the lab: a failed batch stops the rollout."""

from __future__ import annotations

import json
import subprocess

from opsplay.errors import ExitCode

from .conftest import LAB_HOSTS, REPO, on_host, version

APT_REPO = REPO / "molecule" / "security_updates" / "apt-repo.sh"


def test_unhealthy_first_batch_stops_the_rollout(run_opsplay, lab_inventories):
    hosts = [f"opsplay-lab-{i}" for i in range(1, LAB_HOSTS + 1)]
    first, rest = hosts[0], hosts[1:]
    for host in hosts:  # local repositories with v1.1 of the demo packages, v1.0 installed
        subprocess.run(["podman", "cp", str(APT_REPO), f"{host}:/tmp/apt-repo.sh"], check=True)
        on_host(host, "sh /tmp/apt-repo.sh")
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
        for host in hosts:
            on_host(
                host,
                "systemctl disable --now opsplay-demo.service 2>/dev/null;"
                " dpkg --purge $(dpkg-query -W -f '${Package} ' 'opsplay-demo-*') >/dev/null;"
                " rm -rf /srv/opsplay-apt /etc/apt/sources.list.d/opsplay-test.list"
                " /var/run/reboot-required /var/run/reboot-required.pkgs",
            )


def test_weekly_refuses_security_updates_when_the_backup_is_too_old(run_opsplay):
    # The window takes the pre-window backup; with a 1 s limit it is too old by the time the
    # security updates come: the backup gate refuses every db host and names itself.
    proc = run_opsplay(
        "maintenance", "weekly", "--env", "lab", "--json", "-e", "{preflight_backup_max_age: 1}"
    )
    assert proc.code == ExitCode.HOSTS_FAILED, proc.err
    doc = json.loads(proc.out)
    for host, row in doc["hosts"].items():
        assert row["failed"] == 1, (host, row)
        assert row["message"].startswith("refused security updates: gate backup: "), row
        assert "newest verified backup" in row["message"] and "(max 1 s)" in row["message"]
        assert row["failed_task"] == "Pass the gates"
    assert "security_updates" not in doc["data"]  # no host reached the rollout
