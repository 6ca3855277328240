"""opsplay backups: age parsing, the per-database judgement, rendering and exit codes.

The documents are shaped as the pg_backup role's ``inventory`` entry point saves them (the
module's ``list`` entries without row counts).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsplay.commands import backups
from opsplay.errors import ExitCode
from opsplay.lock import environment_lock
from opsplay.runner import RunResult

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
HOUR = 3600


def backup(database, ended, *, good=True, problem="", test=None, size=4096, on_disk=""):
    """A listed backup; ``problem``: its recorded verification failed; ``on_disk``: the
    listing found its archive changed (e.g. truncated) although it was verified."""
    stamp = ended.replace("-", "").replace(":", "")
    name = f"{database}_{stamp}.{'sql' if database == '_globals' else 'dump'}"
    return {
        "name": name,
        "database": database,
        "path": f"/var/backups/postgresql/{database}/{name}",
        "format": "sql" if database == "_globals" else "custom",
        "started": ended,
        "ended": ended,
        "duration_seconds": 1.2,
        "size_bytes": size,
        "sha256": "ab" * 32,
        "server_version": "15.8",
        "verified": {"ok": good, "at": ended, "problem": problem},
        "restore_test": test,
        "tables": 3,
        "good": good and not on_disk,
        "on_disk": {"ok": not on_disk, "problem": on_disk, "checked": "size"},
    }


def document(**hosts):
    return {
        "env": "lab",
        "generated_at": "2026-11-24T12:00:00Z",
        "check": False,
        "hosts": hosts,
        "hosts_without_listing": [],
    }


def host(*items, databases=("postgres",), globals_=True, server_error=""):
    return {
        "backup_dir": "/var/backups/postgresql",
        "globals": globals_,
        "databases": list(databases),
        "server_error": server_error,
        "backups": list(items),
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("26h", 93600), ("2d", 172800), ("45s", 45), ("120", 120), ("1w", 604800)],
)
def test_max_age_forms(text, seconds):
    assert backups.parse_max_age(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0h", "1x", "-2h", "26 hours", "h", "1.5h"])
def test_bad_max_age(text):
    with pytest.raises(backups.OpsplayError, match="bad --max-age"):
        backups.parse_max_age(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (-3, "0s"), (59, "59s"), (61, "1m"), (3 * HOUR + 300, "3h05m"), (93600, "1d02h")],
)
def test_format_age(seconds, text):
    assert backups.format_age(seconds) == text


def test_format_size():
    assert backups.format_size(None) == "-"
    assert backups.format_size(512) == "512 B"
    assert backups.format_size(4096) == "4.0 KiB"
    assert backups.format_size(3 * 1024**3 + 1024**3 // 2) == "3.5 GiB"


def test_fresh_stale_and_missing_databases():
    doc = document(
        db1=host(
            backup("_globals", "2026-11-24T11:00:00Z"),
            backup("postgres", "2026-11-22T02:00:00Z"),
            backup("postgres", "2026-11-24T02:00:00Z"),  # 10h: fresh
            backup("shop", "2026-11-21T02:00:00Z"),  # 3d09h: stale
            backup("crm", "2026-11-24T03:00:00Z", good=False, problem="checksum mismatch"),
            databases=("postgres", "shop", "crm", "new_db"),  # new_db: never backed up
        )
    )
    summary = backups.summarize(doc, NOW, 26 * HOUR)
    dbs = summary["hosts"]["db1"]["databases"]
    assert list(dbs) == ["_globals", "crm", "new_db", "postgres", "shop"]
    assert {n: d["status"] for n, d in dbs.items()} == {
        "_globals": "ok",
        "crm": "missing",
        "new_db": "missing",
        "postgres": "ok",
        "shop": "stale",
    }
    assert dbs["postgres"]["count"] == 2 and dbs["postgres"]["newest_age_seconds"] == 10 * HOUR
    assert dbs["postgres"]["newest"]["name"] == "postgres_20261124T020000Z.dump"
    assert backups.warnings(summary) == [
        "db1 crm: no good backup (1 bad; newest crm_20261124T030000Z.dump: checksum mismatch)",
        "db1 new_db: no backup",
        "db1 shop: newest good backup is 3d10h old (max 1d02h)",
    ]
    assert backups.exit_code(summary, 0) == ExitCode.HOSTS_FAILED
    # a looser threshold clears the stale one, not the missing ones
    loose = backups.summarize(doc, NOW, 4 * 86400)
    assert [p["database"] for p in loose["problems"]] == ["crm", "new_db"]


def test_a_bad_newest_backup_over_a_fresh_good_one():
    doc = document(
        db1=host(
            backup("postgres", "2026-11-24T09:00:00Z"),
            backup("postgres", "2026-11-24T11:00:00Z", good=False, problem="archive missing"),
            globals_=False,
        )
    )
    summary = backups.summarize(doc, NOW, 26 * HOUR)
    db = summary["hosts"]["db1"]["databases"]["postgres"]
    assert db["status"] == "ok" and (db["good"], db["bad"]) == (1, 1)
    assert db["newest"]["name"].startswith("postgres_20261124T110000Z")
    assert db["newest_good_age_seconds"] == 3 * HOUR
    (row,) = backups.rows(summary)
    assert row[2] == "2 (1 bad)" and row[6] == "BAD: archive missing" and row[-1] == "ok"
    assert backups.exit_code(summary, 0) == ExitCode.OK


TRUNCATED = "truncated: 1234 of 5678 bytes"


def test_a_truncated_only_backup_leaves_the_database_without_one():
    doc = document(
        db1=host(backup("postgres", "2026-11-24T11:00:00Z", on_disk=TRUNCATED), globals_=False)
    )
    summary = backups.summarize(doc, NOW, 26 * HOUR)
    db = summary["hosts"]["db1"]["databases"]["postgres"]
    assert db["status"] == "missing" and (db["good"], db["bad"]) == (0, 1)
    assert db["newest_problem"] == TRUNCATED
    (row,) = backups.rows(summary)
    assert row[6] == f"BAD: {TRUNCATED}" and row[-1] == "MISSING"
    assert backups.warnings(summary) == [
        f"db1 postgres: no good backup (1 bad; newest postgres_20261124T110000Z.dump: {TRUNCATED})"
    ]
    assert summary["problems"][0]["why"].endswith(f"{TRUNCATED})")
    assert backups.exit_code(summary, 0) == ExitCode.HOSTS_FAILED


def test_a_truncated_newest_backup_over_good_ones():
    """Bad either way; the exit code says whether a good backup newer than --max-age is left."""
    doc = document(
        db1=host(
            backup("postgres", "2026-11-24T02:00:00Z"),  # 10h old
            backup("postgres", "2026-11-24T11:00:00Z", on_disk=TRUNCATED),
            globals_=False,
        )
    )
    fresh = backups.summarize(doc, NOW, 26 * HOUR)
    (row,) = backups.rows(fresh)
    assert row[2] == "2 (1 bad)" and row[6] == f"BAD: {TRUNCATED}" and row[-1] == "ok"
    assert backups.exit_code(fresh, 0) == ExitCode.OK
    stale = backups.summarize(doc, NOW, 5 * HOUR)
    assert backups.warnings(stale) == [
        "db1 postgres: newest good backup is 10h00m old (max 5h00m); "
        f"newest postgres_20261124T110000Z.dump: {TRUNCATED}"
    ]
    assert backups.exit_code(stale, 0) == ExitCode.HOSTS_FAILED


def test_what_is_on_disk_now_wins_over_the_recorded_verification():
    listed = backup("postgres", "2026-11-24T11:00:00Z", on_disk="archive missing")
    assert listed["verified"]["ok"] is True
    assert backups.backup_problem(listed) == "archive missing"
    assert backups.backup_problem(backup("postgres", "2026-11-24T11:00:00Z")) == ""
    recorded = backup("postgres", "2026-11-24T11:00:00Z", good=False, problem="checksum mismatch")
    assert backups.backup_problem(recorded) == "checksum mismatch"


def test_last_restore_test_is_the_newest_of_any_backup():
    old_ok = {"ok": True, "at": "2026-11-01T03:00:00Z", "message": "", "duration_seconds": 2.0}
    new_failed = {"ok": False, "at": "2026-11-23T12:00:00Z", "message": "row counts differ"}
    doc = document(
        db1=host(
            backup("postgres", "2026-11-01T02:00:00Z", test=new_failed),
            backup("postgres", "2026-11-24T02:00:00Z", test=old_ok),
        )
    )
    summary = backups.summarize(doc, NOW, 26 * HOUR)
    test = summary["hosts"]["db1"]["databases"]["postgres"]["last_restore_test"]
    assert test["ok"] is False and test["backup"] == "postgres_20261101T020000Z.dump"
    assert test["age_seconds"] == 86400
    rows = {r[1]: r for r in backups.rows(summary)}
    assert rows["postgres"][7] == "FAILED 1d00h ago"
    assert rows["_globals"][7] == "n/a"


def test_failed_hosts_and_hosts_without_listing():
    doc = document(db1=host(backup("postgres", "2026-11-24T11:00:00Z"), globals_=False))
    doc["hosts_without_listing"] = ["db2", "db3"]
    summary = backups.summarize(doc, NOW, HOUR * 2, {"db2": "permission denied: /backups"})
    assert summary["failed_hosts"] == {
        "db2": "permission denied: /backups",
        "db3": "no listing (the host failed or was unreachable)",
    }
    assert summary["problems"] == []
    # the run's own code wins: a host we could not see is not "all good"
    assert backups.exit_code(summary, ExitCode.HOSTS_UNREACHABLE) == ExitCode.HOSTS_UNREACHABLE


def test_plain_table():
    doc = document(
        db1=host(backup("postgres", "2026-11-24T11:30:00Z", size=2048), globals_=False),
        db2=host(databases=("postgres",), globals_=False),
    )
    text = backups.render_plain(backups.summarize(doc, NOW, 26 * HOUR))
    lines = text.splitlines()
    assert lines[0].split() == [
        "host",
        "database",
        "backups",
        "newest",
        "age",
        "size",
        "verified",
        "restore",
        "test",
        "status",
    ]
    assert lines[1].split() == [
        "db1",
        "postgres",
        "1",
        "postgres_20261124T113000Z.dump",
        "30m",
        "2.0",
        "KiB",
        "ok",
        "never",
        "ok",
    ]
    assert lines[2].split() == ["db2", "postgres", "0", "-", "-", "-", "-", "never", "MISSING"]
    # columns line up: every row's database starts where the header's does
    assert len({line.index("postgres") for line in lines[1:]}) == 1


# -- the command, with the playbook run replaced by what the role writes ----------------------


@pytest.fixture
def fake_run(monkeypatch):
    """Replace ansible-runner: write ``doc`` where the playbook would, return ``status``."""
    calls = []

    def install(doc, status="successful", rc=0, stats=None):
        def run_playbook(request):
            calls.append(request)
            if doc is not None:
                Path(request.extravars["pg_backup_inventory_file"]).write_text(json.dumps(doc))
            return RunResult(status, rc, stats, artifacts=request.private_data_dir)

        monkeypatch.setattr("opsplay.runner.run_playbook", run_playbook)
        return calls

    return install


def test_prod_needs_no_yes_and_a_held_lock_does_not_block(opsplay, inventories, fake_run, tmp_path):
    doc = document(db1=host(backup("postgres", "2099-01-01T00:00:00Z"), globals_=False))
    calls = fake_run(doc)
    with environment_lock(tmp_path / "state", "prod", "opsplay run backup --env prod"):
        result = opsplay("backups", "--env", "prod", "--json")
    assert result.code == ExitCode.OK, result.err
    assert calls[0].playbook.name == "backups.yml" and calls[0].playbook.parent.name == "queries"
    assert calls[0].playbook.is_file()
    assert json.loads(result.out)["hosts"]["db1"]["databases"]["postgres"]["status"] == "ok"
    history = opsplay("history", "--env", "prod", "--json")
    assert json.loads(history.out)[-1]["what"] == "backups"


def test_verify_asks_the_hosts_for_checksums_and_json_carries_the_reason(
    opsplay, inventories, fake_run
):
    calls = fake_run(
        document(
            db1=host(
                backup("postgres", "2099-01-01T00:00:00Z", on_disk="checksum mismatch (x.dump)"),
                globals_=False,
            )
        )
    )
    plain = opsplay("backups", "--env", "dev", "--json")
    assert "pg_backup_inventory_verify" not in calls[-1].extravars
    assert json.loads(plain.out)["checked"] == "size"
    result = opsplay("backups", "--env", "dev", "--json", "--verify")
    assert calls[-1].extravars["pg_backup_inventory_verify"] is True
    assert result.code == ExitCode.HOSTS_FAILED
    summary = json.loads(result.out)
    assert summary["checked"] == "checksums"
    db = summary["hosts"]["db1"]["databases"]["postgres"]
    assert db["newest_problem"] == "checksum mismatch (x.dump)"
    assert db["newest"]["on_disk"]["problem"] == "checksum mismatch (x.dump)"
    assert summary["problems"][0]["why"].endswith(": checksum mismatch (x.dump))")
    assert "checksum" in opsplay("backups", "--help").out


def test_stale_listing_exits_3_with_one_warning_line_each(opsplay, inventories, fake_run):
    fake_run(document(db1=host(backup("postgres", "2020-01-01T00:00:00Z"))))
    result = opsplay("backups", "--env", "dev", "--max-age", "2d")
    assert result.code == ExitCode.HOSTS_FAILED
    first, second = result.err.splitlines()
    assert first == "opsplay: warning: db1 _globals: no backup"
    assert re.fullmatch(
        r"opsplay: warning: db1 postgres: newest good backup is \d+d\d\dh old \(max 2d00h\)", second
    )
    assert "STALE" in result.out and "MISSING" in result.out


def test_no_listing_at_all_is_one_line_with_the_run_code(opsplay, inventories, fake_run):
    fake_run(None, status="failed", rc=4)  # no stats: ansible-playbook could not even start
    result = opsplay("backups", "--env", "dev")
    assert result.code == ExitCode.ERROR
    assert len(result.err.strip().splitlines()) == 1
    assert result.err.startswith("opsplay: no backup listing for 'dev' (failed); see: opsplay")
    fake_run(None, status="failed", rc=4, stats={"dark": {"dev-db01": 1}})
    assert opsplay("backups", "--env", "dev").code == ExitCode.HOSTS_UNREACHABLE


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("backups", "--env", "qa"), "unknown environment 'qa'"),
        (("backups", "--env", "dev", "--max-age", "soon"), "bad --max-age 'soon'"),
        (("backups",), "missing --env"),
    ],
)
def test_bad_input_is_one_line_exit_2(opsplay, inventories, fake_run, args, needle):
    calls = fake_run(None)
    result = opsplay(*args)
    assert result.code == ExitCode.USAGE
    assert result.err.strip().splitlines() == [result.err.strip()]
    assert needle in result.err and not calls


def test_max_age_from_the_environment(opsplay, inventories, fake_run, monkeypatch):
    fake_run(None)
    monkeypatch.setenv("OPSPLAY_BACKUP_MAX_AGE", "forever")
    assert "bad --max-age 'forever'" in opsplay("backups", "--env", "dev").err


def test_a_server_that_does_not_answer_is_said(opsplay, inventories, fake_run):
    listing = host(backup("postgres", "2099-01-01T00:00:00Z"), databases=(), globals_=False)
    listing["server_error"] = "unable to connect to database: connection refused"
    fake_run(document(db1=listing))
    result = opsplay("backups", "--env", "dev")
    assert result.code == ExitCode.OK
    assert result.err.splitlines() == [
        "opsplay: db1: cannot list the server's databases, so a database that has never been "
        "backed up is not shown (unable to connect to database: connection refused)"
    ]
