"""opsplay status: turning what the hosts and the control node recorded into rows and metrics."""

from __future__ import annotations

import json

from opsplay.commands.status import host_status, last_schedule_runs, last_vacuums, render
from opsplay.metrics import registry, write
from opsplay.state import RunRecord

NOW = 1_800_000_000.0


def probe(**overrides):
    base = {
        "backups": {
            "shop": {
                "newest_verified": "shop_x.dump",
                "newest_verified_age_seconds": 3600,
                "newest_verified_timestamp": int(NOW) - 3600,
                "bad": 1,
                "last_restore_test_age_seconds": 7200,
                "last_restore_test_timestamp": int(NOW) - 7200,
                "last_restore_test_ok": True,
            },
            "_globals": {
                "newest_verified": "_globals_x.sql",
                "newest_verified_age_seconds": 60,
                "newest_verified_timestamp": int(NOW) - 60,
                "bad": 0,
                "last_restore_test_age_seconds": None,
                "last_restore_test_ok": None,
            },
        },
        "certificates": {
            "/a.pem": {"days_left": 12.5, "not_after_timestamp": int(NOW) + 12 * 86400},
            "/b.pem": {"days_left": 80.0, "not_after_timestamp": int(NOW) + 80 * 86400},
            "/c.pem": {"error": "unreadable"},
        },
        "security_updates": {
            "pending_security": ["libssl3"],
            "recorded_age_seconds": 5,
            "recorded_timestamp": int(NOW) - 5,
        },
        "reboot": {"required": True, "packages": ["linux-image"]},
    }
    base.update(overrides)
    return base


def test_host_status_takes_the_worst_of_each_kind():
    row = host_status(probe(), db_host=True, last_vacuum=NOW - 600, now=NOW)
    assert row["backup_oldest_newest_age_seconds"] == 3600  # the stalest database counts
    assert row["backup_missing"] == []
    assert (row["restore_test_ok"], row["restore_test_age_seconds"]) == (True, 7200)
    assert row["cert_min_days_left"] == 12.5
    assert row["security_pending"] == 1 and row["reboot_required"] is True
    assert row["vacuum_age_seconds"] == 600


def test_missing_backups_and_records_show_as_such():
    row = host_status(probe(backups={}, security_updates=None), True, None, NOW)
    assert row["backup_missing"] == ["(no backups)"]
    assert row["security_pending"] is None and row["vacuum_age_seconds"] is None
    web = host_status(probe(backups={}), db_host=False, last_vacuum=None, now=NOW)
    assert web["backup_missing"] == []  # no database, nothing missing
    assert host_status(None, True, None, NOW) == {"reachable": False}


def test_last_schedule_runs_ignores_check_runs_and_other_commands():
    def record(what, started, check=False, status="successful"):
        return RunRecord(id=f"{started}", env="prod", what=what, check=check, started=started,
                         status=status, exit_code=0 if status == "successful" else 3)  # fmt: skip

    runs = last_schedule_runs(
        [
            record("maintenance weekly", 1, status="failed"),
            record("maintenance weekly", 2),
            record("maintenance weekly", 3, check=True),
            record("run vacuum", 4),
        ]
    )
    assert runs["weekly"]["started"] == 2 and runs["weekly"]["status"] == "successful"
    assert runs["daily"] == {}


def test_last_vacuums_reads_only_real_vacuum_reports(tmp_path):
    def report(name, time_, hosts):
        doc = {"time": time_, "hosts": [{"host": h} for h in hosts]}
        (tmp_path / name).write_text(json.dumps(doc))

    report("20260101T000000Z-vacuum.json", "2026-01-01T00:00:00Z", ["db1", "db2"])
    report("20260102T000000Z-vacuum.json", "2026-01-02T00:00:00Z", ["db1"])
    report("20260103T000000Z-vacuum-check.json", "2026-01-03T00:00:00Z", ["db1", "db2"])
    found = last_vacuums(tmp_path)
    assert found == {"db1": 1767312000.0, "db2": 1767225600.0}


def samples(status, now=NOW):
    """{(name, labels...): value} parsed back with prometheus_client's own text parser, after
    the file was written the way opsplay status writes it."""
    import tempfile
    from pathlib import Path

    from prometheus_client.parser import text_string_to_metric_families

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics" / "opsplay-prod.prom"
        write(path, registry(status, now))
        assert oct(path.stat().st_mode & 0o777) == "0o644"
        assert oct(path.parent.stat().st_mode & 0o777) == "0o755"
        text = path.read_text()
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, family.name  # HELP on every metric
        assert family.type == "gauge", family.name  # TYPE on every metric
        assert family.name.startswith("opsplay_"), family.name
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found, text


def test_metrics_parse_back_with_base_units_and_escaped_labels():
    status = {
        "env": "prod",
        "hosts": {
            'db"1': host_status(probe(), True, NOW - 60, NOW),
            "gone": {"reachable": False},
        },
        "schedules": {"weekly": {"started": NOW - 10, "status": "failed", "exit_code": 3}},
    }
    found, _ = samples(status, now=NOW + 0.25)
    db = (("env", "prod"), ("host", 'db"1'))
    shop = (("database", "shop"), *db)
    assert found[("opsplay_backup_last_verified_timestamp_seconds", *shop)] == NOW - 3600
    assert found[("opsplay_backup_verified", *shop)] == 1
    assert found[("opsplay_backup_bad", *shop)] == 1
    assert found[("opsplay_restore_test_last_timestamp_seconds", *shop)] == NOW - 7200
    assert found[("opsplay_restore_test_success", *shop)] == 1
    # _globals was never restore-tested: no restore sample rather than a made-up one
    globals_ = (("database", "_globals"), *db)
    assert ("opsplay_restore_test_success", *globals_) not in found
    cert = (("certificate", "/a.pem"), *db)
    assert found[("opsplay_certificate_expiry_timestamp_seconds", *cert)] == NOW + 12 * 86400
    assert found[("opsplay_certificate_unreadable", ("certificate", "/c.pem"), *db)] == 1
    assert found[("opsplay_security_updates_pending", *db)] == 1
    assert found[("opsplay_security_updates_checked_timestamp_seconds", *db)] == NOW - 5
    assert found[("opsplay_vacuum_last_timestamp_seconds", *db)] == NOW - 60
    assert found[("opsplay_host_up", ("env", "prod"), ("host", "gone"))] == 0
    weekly = (("env", "prod"), ("schedule", "weekly"))
    assert found[("opsplay_schedule_last_run_success", *weekly)] == 0
    assert found[("opsplay_schedule_last_run_timestamp_seconds", *weekly)] == NOW - 10
    # full precision: a timestamp is exact to the fraction (the old %g text said 1.8e+09)
    assert found[("opsplay_status_timestamp_seconds", ("env", "prod"))] == NOW + 0.25
    table = render(status, NOW)
    assert "weekly     last run 10s ago: failed (exit 3)" in table


def test_a_host_in_maintenance_mode_shows_since_when_and_which_run():
    window = {"time": "2027-01-15T08:00:00Z", "since_epoch": 1_800_000_000 - 3600,
              "run_id": "20270115-080000.000-prod-ab12", "reason": "weekly maintenance",
              "scheduled": True}  # fmt: skip
    status = {
        "env": "prod",
        "hosts": {
            "web1": host_status(probe(maintenance=window), False, None, NOW),
            "web2": host_status(probe(), False, None, NOW),
        },
        "schedules": {},
    }
    found, _ = samples(status)
    web1, web2 = (("env", "prod"), ("host", "web1")), (("env", "prod"), ("host", "web2"))
    assert found[("opsplay_maintenance_mode", *web1)] == 1
    assert found[("opsplay_maintenance_mode", *web2)] == 0
    assert found[("opsplay_maintenance_mode_since_timestamp_seconds", *web1)] == 1_799_996_400
    assert ("opsplay_maintenance_mode_since_timestamp_seconds", *web2) not in found
    table = render(status, NOW).splitlines()
    assert table[0].split()[-1] == "maintenance"
    web1 = next(line for line in table if line.startswith("web1"))
    web2 = next(line for line in table if line.startswith("web2"))
    assert web1.endswith("since 2027-01-15T08:00:00Z (run 20270115-080000.000-prod-ab12)")
    assert web2.endswith(" -")
