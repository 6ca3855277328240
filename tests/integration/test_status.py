"""`opsplay status --env lab`: fresh values after the procedures ran, gaps when things go."""

from __future__ import annotations

import json
import subprocess

from opsplay.errors import ExitCode

from .conftest import LAB_HOSTS

HOSTS = [f"opsplay-lab-{i}" for i in range(1, LAB_HOSTS + 1)]
CERT_DIR = "/etc/letsencrypt/live/status-test"


def on_host(host: str, script: str) -> None:
    subprocess.run(["podman", "exec", host, "sh", "-c", script], check=True, capture_output=True)


def test_status_after_the_procedures_then_with_backups_deleted(run_opsplay):
    for host in HOSTS:  # a certificate with 40 days left where certbot keeps its lineages
        on_host(
            host,
            f"mkdir -p {CERT_DIR} && openssl req -x509 -newkey rsa:2048 -nodes -days 40"
            f" -subj /CN=status.test -keyout {CERT_DIR}/privkey.pem -out {CERT_DIR}/cert.pem",
        )
    try:
        weekly = run_opsplay("maintenance", "weekly", "--env", "lab", "--json")
        assert weekly.code == ExitCode.OK, weekly.err
        tested = run_opsplay("run", "restore-test", "--env", "lab", "--json")
        assert tested.code == ExitCode.OK, tested.err

        proc = run_opsplay("status", "--env", "lab", "--json")
        assert proc.code == ExitCode.OK, proc.err
        status = json.loads(proc.out)
        assert sorted(status["hosts"]) == HOSTS
        for host, row in status["hosts"].items():
            assert row["reachable"], host
            assert row["backup_missing"] == [], row
            assert 0 <= row["backup_oldest_newest_age_seconds"] < 900, row
            assert row["restore_test_ok"] is True and row["restore_test_age_seconds"] < 900, row
            assert 39 <= row["cert_min_days_left"] <= 40, row
            assert row["security_pending"] == 0, row  # the security_updates role's record
            assert row["reboot_required"] is False, row
            assert 0 <= row["vacuum_age_seconds"] < 900, row
        weekly_run = status["schedules"]["weekly"]
        assert weekly_run["status"] == "successful" and weekly_run["exit_code"] == 0
        assert status["schedules"]["monthly"] == {}

        prom = (run_opsplay.state / "metrics" / "opsplay-lab.prom").read_text()
        assert 'opsplay_schedule_last_run_success{env="lab",schedule="weekly"} 1' in prom
        assert f'opsplay_backup_missing{{env="lab",host="{HOSTS[0]}"}} 0' in prom

        on_host(HOSTS[0], "rm -f /var/backups/postgresql/*/*")
        proc = run_opsplay("status", "--env", "lab", "--json")
        assert proc.code == ExitCode.OK, proc.err
        rows = json.loads(proc.out)["hosts"]
        assert rows[HOSTS[0]]["backup_missing"] == ["_globals", "postgres"]
        assert rows[HOSTS[0]]["restore_test_ok"] is None
        for host in HOSTS[1:]:
            assert rows[host]["backup_missing"] == []
        prom = (run_opsplay.state / "metrics" / "opsplay-lab.prom").read_text()
        assert f'opsplay_backup_missing{{env="lab",host="{HOSTS[0]}"}} 2' in prom
        table = run_opsplay("status", "--env", "lab").out
        assert "MISSING _globals,postgres" in table and "weekly     last run" in table
    finally:
        for host in HOSTS:
            on_host(host, f"rm -rf {CERT_DIR}")
