"""`opsplay status --env lab`: fresh values after the procedures ran, gaps when things go."""

from __future__ import annotations

import calendar
import json
import subprocess
import time

from opsplay.errors import ExitCode

from .conftest import LAB_HOSTS

HOSTS = [f"opsplay-lab-{i}" for i in range(1, LAB_HOSTS + 1)]
CERT_DIR = "/etc/letsencrypt/live/status-test"


def on_host(host: str, script: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, "sh", "-c", script], check=True, capture_output=True, text=True
    ).stdout


def textfile(run_opsplay) -> dict[tuple, float]:
    """The textfile opsplay status wrote, parsed by prometheus_client's own parser:
    {(name, (label, value)...): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    path = run_opsplay.metrics / "opsplay-lab.prom"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.name.startswith("opsplay_") and family.documentation and family.type
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def newest_manifest_end(host: str, database: str) -> int:
    """When the newest backup of ``database`` on ``host`` ended, from its manifest (Unix time)."""
    ended = on_host(
        host,
        f"ls /var/backups/postgresql/{database}/*.json | tail -1 | xargs python3 -c "
        "'import json,sys; print(json.load(open(sys.argv[1]))[\"ended\"])'",
    ).strip()
    return calendar.timegm(time.strptime(ended, "%Y-%m-%dT%H:%M:%SZ"))


def certificate_end(host: str) -> int:
    end = on_host(host, f"openssl x509 -noout -enddate -in {CERT_DIR}/cert.pem").strip()
    return calendar.timegm(time.strptime(end.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z"))


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

        before = time.time()
        proc = run_opsplay("status", "--env", "lab", "--json")
        after = time.time()
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

        found = textfile(run_opsplay)
        weekly_labels = (("env", "lab"), ("schedule", "weekly"))
        assert found[("opsplay_schedule_last_run_success", *weekly_labels)] == 1
        assert (
            found[("opsplay_schedule_last_run_timestamp_seconds", *weekly_labels)]
            == (weekly_run["started"])
        )
        assert before <= found[("opsplay_status_timestamp_seconds", ("env", "lab"))] <= after
        for host in HOSTS:  # each value equal to the second to what the host holds
            labels = (("env", "lab"), ("host", host))
            for database in ("postgres", "_globals"):
                db = (("database", database), *labels)
                assert found[("opsplay_backup_verified", *db)] == 1
                assert found[("opsplay_backup_last_verified_timestamp_seconds", *db)] == (
                    newest_manifest_end(host, database)
                )
            cert = (("certificate", f"{CERT_DIR}/cert.pem"), *labels)
            assert found[("opsplay_certificate_expiry_timestamp_seconds", *cert)] == (
                certificate_end(host)
            )
            assert found[("opsplay_host_up", *labels)] == 1
            assert found[("opsplay_restore_test_success", ("database", "postgres"), *labels)] == 1

        on_host(HOSTS[0], "rm -f /var/backups/postgresql/*/*")
        proc = run_opsplay("status", "--env", "lab", "--json")
        assert proc.code == ExitCode.OK, proc.err
        rows = json.loads(proc.out)["hosts"]
        assert rows[HOSTS[0]]["backup_missing"] == ["_globals", "postgres"]
        assert rows[HOSTS[0]]["restore_test_ok"] is None
        for host in HOSTS[1:]:
            assert rows[host]["backup_missing"] == []
        found = textfile(run_opsplay)
        first = (("env", "lab"), ("host", HOSTS[0]))
        for database in ("postgres", "_globals"):
            assert found[("opsplay_backup_verified", ("database", database), *first)] == 0
            assert (
                "opsplay_backup_last_verified_timestamp_seconds",
                ("database", database),
                *first,
            ) not in found
        table = run_opsplay("status", "--env", "lab").out
        assert "MISSING _globals,postgres" in table and "weekly     last run" in table
    finally:
        for host in HOSTS:
            on_host(host, f"rm -rf {CERT_DIR}")
