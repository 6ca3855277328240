"""opsplay status: turning what the hosts and the control node recorded into rows and metrics."""

from __future__ import annotations

import json

from opsplay.commands.status import host_status, last_schedule_runs, last_vacuums, metrics, render
from opsplay.state import RunRecord

NOW = 1_800_000_000.0


def probe(**overrides):
    base = {
        "backups": {
            "shop": {
                "newest_verified": "shop_x.dump",
                "newest_verified_age_seconds": 3600,
                "last_restore_test_age_seconds": 7200,
                "last_restore_test_ok": True,
            },
            "_globals": {
                "newest_verified": "_globals_x.sql",
                "newest_verified_age_seconds": 60,
                "last_restore_test_age_seconds": None,
                "last_restore_test_ok": None,
            },
        },
        "certificates": {"/a.pem": {"days_left": 12.5}, "/b.pem": {"days_left": 80.0}},
        "security_updates": {"pending_security": ["libssl3"], "recorded_age_seconds": 5},
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


def test_metrics_are_textfile_format_with_escaped_labels():
    status = {
        "env": "prod",
        "hosts": {
            'db"1': host_status(probe(), True, NOW - 60, NOW),
            "gone": {"reachable": False},
        },
        "schedules": {"weekly": {"started": NOW - 10, "status": "failed", "exit_code": 3}},
    }
    text = metrics(status, NOW)
    lines = text.splitlines()
    assert 'opsplay_backup_age_seconds{env="prod",host="db\\"1"} 3600' in lines
    assert 'opsplay_host_reachable{env="prod",host="gone"} 0' in lines
    assert 'opsplay_schedule_last_run_success{env="prod",schedule="weekly"} 0' in lines
    # every sample belongs to a family declared once with HELP and TYPE
    names = [line.split("{")[0] for line in lines if not line.startswith("#")]
    for name in set(names):
        assert lines.count(f"# TYPE {name} gauge") == 1
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
    lines = metrics(status, NOW).splitlines()
    assert 'opsplay_maintenance_mode{env="prod",host="web1"} 1' in lines
    assert 'opsplay_maintenance_mode{env="prod",host="web2"} 0' in lines
    assert (
        'opsplay_maintenance_mode_since_timestamp_seconds{env="prod",host="web1"} 1799996400'
        in lines
    )
    table = render(status, NOW).splitlines()
    assert table[0].split()[-1] == "maintenance"
    web1 = next(line for line in table if line.startswith("web1"))
    web2 = next(line for line in table if line.startswith("web2"))
    assert web1.endswith("since 2027-01-15T08:00:00Z (run 20270115-080000.000-prod-ab12)")
    assert web2.endswith(" -")
