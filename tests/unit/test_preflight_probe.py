"""plugins/modules/preflight_probe.py: the pre-flight gates' decisions and messages (no host)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.modules import preflight_probe as pf

from .test_backup_manifest import make

UTC = datetime.UTC
AT = datetime.datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)


def params(tmp_path, **over):
    p = {
        "gates": ["backup", "disk", "activity"],
        "step": "security updates",
        "db_host": True,
        "backup_dir": str(tmp_path),
        "databases": [],
        "backup_max_age": 93600,
        "backup_take": False,
        "disk": [],
        "activity": None,
        "max_transaction_age": 300,
        "max_lock_waiters": 0,
    }
    p.update(over)
    return p


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0 s"),
        (1, "1 s"),
        (119, "119 s"),
        (120, "2 min"),
        (7199, "119 min"),
        (7200, "2 h"),
        (93600, "26 h"),
        (108000, "30 h"),
        (95400, "26.5 h"),
    ],
)
def test_ages_in_messages(seconds, text):
    assert pf.duration(seconds) == text


def test_fresh_backups_of_every_set_pass(tmp_path):
    make(tmp_path, "shop", "20261124T020000Z")
    make(tmp_path, "_globals", "20261124T020000Z", ext=".sql")
    result = pf.judge(params(tmp_path, databases=["shop"]), AT)
    assert result["problems"] == [] and not result["backup_refused"]
    assert result["backups"] == {
        "_globals": {"name": "_globals_20261124T020000Z.sql", "age_seconds": 3600},
        "shop": {"name": "shop_20261124T020000Z.dump", "age_seconds": 3600},
    }
    assert result["msg"] == "gates passed for security updates: backup, disk, activity"
    assert not pf.fails(result, backup_take=False)


def test_a_stale_backup_is_refused_naming_database_backup_and_ages(tmp_path):
    make(tmp_path, "shop", "20261122T210000Z")  # 30 h before AT
    result = pf.judge(params(tmp_path), AT)
    assert result["problems"] == [
        "gate backup: shop newest verified backup shop_20261122T210000Z.dump is 30 h old (max 26 h)"
    ]
    assert result["msg"] == "refused security updates: " + result["problems"][0]
    assert result["backup_refused"] and pf.fails(result, backup_take=False)


def test_a_stale_globals_backup_is_refused_like_a_database(tmp_path):
    make(tmp_path, "shop", "20261124T020000Z")
    make(tmp_path, "_globals", "20261124T020000Z", ext=".sql")
    result = pf.judge(params(tmp_path, backup_max_age=1), AT)
    assert [p.split(" newest")[0] for p in result["problems"]] == [
        "gate backup: _globals",
        "gate backup: shop",
    ]
    assert result["problems"][1].endswith("is 60 min old (max 1 s)")


def test_declared_and_server_databases_without_backup_are_refused(tmp_path):
    make(tmp_path, "shop", "20261124T020000Z")
    result = pf.judge(params(tmp_path, databases=["crm", "shop"]), AT)
    assert result["problems"] == ["gate backup: crm has no verified backup"]


def test_no_backup_dir_at_all_is_one_refusal(tmp_path):
    result = pf.judge(params(tmp_path / "absent"), AT)
    assert result["problems"] == [f"gate backup: no verified backup in {tmp_path / 'absent'}"]


def test_damaged_newest_backups_fall_back_or_refuse(tmp_path):
    make(tmp_path, "shop", "20261122T210000Z")  # old but whole
    truncated = make(tmp_path, "shop", "20261124T020000Z")
    with open(truncated, "r+b") as handle:
        handle.truncate(3)
    Path(f"{make(tmp_path, 'crm', '20261124T020000Z')}.json").write_text("{")
    result = pf.judge(params(tmp_path), AT)
    assert result["problems"] == [
        "gate backup: crm has no verified backup",
        "gate backup: shop newest verified backup shop_20261122T210000Z.dump is 30 h old"
        " (max 26 h)",
    ]


def test_the_backup_and_activity_gates_skip_hosts_that_are_not_database_servers(tmp_path):
    result = pf.judge(
        params(
            tmp_path / "absent",
            db_host=False,
            activity={"oldest_xact_seconds": 9999, "oldest_xact_pid": 1, "lock_waiters": 5},
        ),
        AT,
    )
    assert result["problems"] == [] and result["backups"] == {}


def test_disk_gate_free_space_and_missing_paths(tmp_path):
    disk = [
        {"path": str(tmp_path), "min_free_mb": 1},
        {"path": str(tmp_path), "min_free_mb": 10**12},
        {"path": str(tmp_path / "nonexistent"), "min_free_mb": "1"},
    ]
    result = pf.judge(params(tmp_path, gates=["disk"], disk=disk), AT)
    measured = result["disk"]
    assert measured[0]["free_mb"] >= 1 and measured[0]["min_free_mb"] == 1
    assert result["problems"] == [
        f"gate disk: {tmp_path} has {measured[1]['free_mb']} MiB free, needs {10**12}",
        f"gate disk: {tmp_path / 'nonexistent'}: No such file or directory",
    ]
    assert not result["backup_refused"] and pf.fails(result, backup_take=True)


def test_activity_gate_both_causes(tmp_path):
    activity = {"oldest_xact_seconds": 301, "oldest_xact_pid": 4242, "lock_waiters": 1}
    result = pf.judge(params(tmp_path, gates=["activity"], activity=activity), AT)
    assert result["problems"] == [
        "gate activity: a transaction has been open 301 s (pid 4242, max 300 s)",
        "gate activity: 1 sessions wait on locks (max 0)",
    ]
    quiet = {"oldest_xact_seconds": 300, "oldest_xact_pid": None, "lock_waiters": 0}
    assert pf.judge(params(tmp_path, gates=["activity"], activity=quiet), AT)["problems"] == []


def test_only_the_gates_asked_for_are_judged(tmp_path):
    activity = {"oldest_xact_seconds": 9999, "oldest_xact_pid": 1, "lock_waiters": 0}
    disk = [{"path": str(tmp_path / "nonexistent"), "min_free_mb": 1}]
    result = pf.judge(params(tmp_path / "absent", gates=[], disk=disk, activity=activity), AT)
    assert result["problems"] == [] and result["msg"] == "gates passed for security updates: "


def test_backup_take_defers_the_refusal_of_the_backup_gate_only_to_the_second_call(tmp_path):
    result = pf.judge(params(tmp_path, databases=["shop"]), AT)
    assert result["backup_refused"]
    assert not pf.fails(result, backup_take=True)  # the role takes a backup, then calls again
    assert pf.fails(result, backup_take=False)
    disk = [{"path": str(tmp_path / "nonexistent"), "min_free_mb": 1}]
    both = pf.judge(params(tmp_path, databases=["shop"], disk=disk), AT)
    assert not pf.fails(both, backup_take=True)  # the second call names both gates


def test_unknown_gates_are_one_line():
    assert pf.unknown_gates(["backup", "disk", "activity"]) == ""
    assert pf.unknown_gates(["backup", "dsik", "cpu"]) == (
        "preflight_gates: unknown gate(s) dsik, cpu (known: backup, disk, activity)"
    )


def test_the_server_is_measured_by_psql_as_the_postgres_user():
    pg = {"unix_socket": "/run/pg", "port": 5433, "become_user": "postgres"}
    as_root = pf.server_command(pg, 0)
    assert as_root[:4] == ["runuser", "-u", "postgres", "--"] and as_root[4] == "psql"
    assert as_root[as_root.index("-h") + 1] == "/run/pg" and "5433" in as_root
    assert as_root[-1] == pf.SERVER_QUERY
    assert pf.server_command(pg, 1000)[0] == "psql"  # already that user: no runuser

    row = json.dumps(
        {"databases": ["app", "postgres"], "oldest_xact_seconds": 7, "oldest_xact_pid": 42,
         "lock_waiters": 0}
    )  # fmt: skip
    server, error = pf.measure_server(lambda argv: (0, row + "\n", ""), pg, 0)
    assert error is None and server["databases"] == ["app", "postgres"]
    assert server["oldest_xact_pid"] == 42

    refused = (
        'psql: error: connection to server on socket "/run/pg/.s.PGSQL.5433" failed:\n No such file'
    )
    server, error = pf.measure_server(lambda argv: (2, "", refused), pg, 0)
    assert server is None
    assert error == (
        "cannot measure PostgreSQL on /run/pg:5433: psql: error: connection to server on "
        'socket "/run/pg/.s.PGSQL.5433" failed: No such file'
    )
    _server, error = pf.measure_server(lambda argv: (0, "", ""), pg, 0)
    assert error.startswith("cannot measure PostgreSQL: psql answered")
