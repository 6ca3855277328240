"""plugins/modules/pg_backup_restore.py against a recorded PostgreSQL cluster (databases, their
sessions, renames in transactions that commit or roll back): the swap of a restored copy into
place, where the data is after each kind of failure, and main()'s plan and swap as Ansible runs
them. The decisions alone: test_pg_backup_restore.py.

psycopg2 is a recorded fake (tests/unit/pg_backup_fakes.py); molecule/pg_backup
(verify_restore.yml) proves the swap on a real server, sessions and locks included."""

from __future__ import annotations

import re

import pytest
from ansible_collections.opsplay.ops.plugins.modules import pg_backup_restore as module

from .pg_backup_fakes import (
    FakeError,
    FakeOperationalError,
    FakeServer,
    fake_psycopg2,
    no_psycopg2,
    run,
)

RENAME = re.compile(r'^ALTER DATABASE "(.+)" RENAME TO "(.+)"$')
ALLOW = re.compile(r'^ALTER DATABASE "(.+)" WITH ALLOW_CONNECTIONS (true|false)$')
DROP = re.compile(r'^DROP DATABASE "(.+)"$')


class Cluster(FakeServer):
    """Databases ({name: allows connections}) and sessions ({database: [(user, app)]}); renames
    in a transaction are undone by a rollback. fail: {statement prefix: [errors to raise, in
    turn]}; sticky: databases whose sessions survive pg_terminate_backend; arriving: sessions
    that connect to a database right after its sessions were terminated (once each)."""

    def __init__(self, databases, sessions=None, fail=None, sticky=(), arriving=None):
        super().__init__()
        self.databases = dict(databases)
        self.sessions = {k: list(v) for k, v in (sessions or {}).items()}
        self.fail = {k: list(v) for k, v in (fail or {}).items()}
        self.sticky = set(sticky)
        self.arriving = dict(arriving or {})
        self.saved = None
        self.terminated: list[str] = []

    def answer(self, sql, args, conn):
        for prefix, errors in self.fail.items():
            if sql.startswith(prefix) and errors:
                raise errors.pop(0)
        if not conn.autocommit and self.saved is None:
            self.saved = dict(self.databases)  # a transaction begins
        if sql.startswith("SELECT datname, datallowconn"):
            return [(n, self.databases[n]) for n in args[0] if n in self.databases]
        if sql.startswith("SELECT usename"):
            return list(self.sessions.get(args[0], []))
        if sql.startswith("SELECT pg_terminate_backend"):
            self.terminated.append(args[0])
            if args[0] not in self.sticky:
                self.sessions[args[0]] = self.arriving.pop(args[0], [])
            return [(True,)]
        if match := RENAME.match(sql):
            old, new = match.groups()
            if self.sessions.get(old):
                raise FakeError("database is being accessed by other users", pgcode="55006")
            self.databases[new] = self.databases.pop(old)
            return None
        if match := ALLOW.match(sql):
            self.databases[match.group(1)] = match.group(2) == "true"
            return None
        if match := DROP.match(sql):
            del self.databases[match.group(1)]
            return None
        raise AssertionError(sql)

    def commit(self, conn):
        self.saved = None

    def rollback(self, conn):
        if self.saved is not None:
            self.databases, self.saved = self.saved, None


def swap_params(**overrides):
    params = {"target": "shop", "replace": False, "terminate_sessions": False,
              "keep_previous": False, "allow_connections": True}  # fmt: skip
    params.update(overrides)
    return params


def swapped(monkeypatch, cluster, **overrides):
    fake_psycopg2(monkeypatch, cluster)
    monkeypatch.setattr(module.time, "sleep", lambda seconds: None)
    server = module.Server({"maintenance_db": "postgres", "login_host": "", "login_port": 5432,
                            "login_unix_socket": "/run/pg", "login_user": "postgres",
                            "login_password": ""}).connect()  # fmt: skip
    return module.swap(server, swap_params(**overrides))


def failed_swap(monkeypatch, cluster, **overrides):
    with pytest.raises(module.RestoreError) as failed:
        swapped(monkeypatch, cluster, **overrides)
    assert failed.value.bad_input is False
    return str(failed.value)


# -- the swap -------------------------------------------------------------------------------------


def test_a_new_database_is_the_restored_copy_renamed(monkeypatch):
    cluster = Cluster({"shop__restoring": True}, {"shop__restoring": [("monitor", "agent")]})
    assert swapped(monkeypatch, cluster) == "created shop"
    assert cluster.databases == {"shop": True}
    assert cluster.terminated == ["shop__restoring"]


def test_a_replaced_database_keeps_its_name_and_its_previous_data_goes_last(monkeypatch):
    cluster = Cluster({"shop": False, "shop__restoring": True})
    message = swapped(monkeypatch, cluster, replace=True, allow_connections=False)
    assert message == "replaced shop (previous data dropped)"
    assert cluster.databases == {"shop": False}  # as it was: closed to connections
    renames = [s for s in cluster.statements() if "RENAME" in s]
    assert renames == [
        'ALTER DATABASE "shop" RENAME TO "shop__previous"',
        'ALTER DATABASE "shop__restoring" RENAME TO "shop"',
    ]
    assert cluster.statements()[-1] == 'DROP DATABASE "shop__previous"'


def test_the_previous_data_is_kept_when_asked(monkeypatch):
    cluster = Cluster({"shop": True, "shop__restoring": True})
    message = swapped(monkeypatch, cluster, replace=True, keep_previous=True)
    assert message == "replaced shop; its previous data kept as shop__previous"
    assert cluster.databases == {"shop": True, "shop__previous": True}


def test_sessions_on_the_target_refuse_the_swap_unless_terminating(monkeypatch):
    sessions = {"shop": [("alice", "psql")]}
    cluster = Cluster({"shop": True, "shop__restoring": True}, sessions)
    message = failed_swap(monkeypatch, cluster, replace=True)
    assert message == (
        "database shop has 1 session (alice psql): not replaced, shop left as it was; close "
        "them or end them with -e terminate_sessions=true"
    )
    assert set(cluster.databases) == {"shop", "shop__restoring"}
    cluster = Cluster({"shop": True, "shop__restoring": True}, sessions)
    assert swapped(monkeypatch, cluster, replace=True, terminate_sessions=True).startswith(
        "replaced shop"
    )
    assert "shop" in cluster.terminated


def test_a_session_slipping_in_is_ended_and_the_swap_tried_again(monkeypatch):
    # alice connects to shop again right after her session was terminated: the first rename
    # fails (object in use), the transaction rolls back and the next attempt succeeds
    cluster = Cluster(
        {"shop": True, "shop__restoring": True},
        {"shop": [("alice", "psql")]},
        arriving={"shop": [("alice", "psql")]},
    )
    assert swapped(monkeypatch, cluster, replace=True, terminate_sessions=True) == (
        "replaced shop (previous data dropped)"
    )
    assert cluster.terminated.count("shop") == 2
    assert cluster.databases == {"shop": True}


def test_a_failing_rename_is_rolled_back_naming_where_the_data_is(monkeypatch):
    error = FakeError("permission denied to rename database\nDETAIL: x")
    cluster = Cluster(
        {"shop": True, "shop__restoring": True},
        fail={'ALTER DATABASE "shop__restoring" RENAME': [error]},
    )
    message = failed_swap(monkeypatch, cluster, replace=True)
    assert message == (
        "moving the restored copy into place failed: permission denied to rename database; "
        "rolled back, shop left as it was"
    )
    # the first rename (shop -> shop__previous) was undone with the transaction
    assert set(cluster.databases) == {"shop", "shop__restoring"}


def test_busy_every_time_gives_up_after_the_attempts(monkeypatch):
    busy = [FakeError("being accessed by other users", pgcode="55006") for _ in range(5)]
    cluster = Cluster(
        {"shop__restoring": True}, fail={'ALTER DATABASE "shop__restoring" RENAME': busy}
    )
    message = failed_swap(monkeypatch, cluster)
    assert message == (
        "moving the restored copy into place failed: being accessed by other users; rolled "
        "back, shop not created"
    )
    assert len(cluster.fail['ALTER DATABASE "shop__restoring" RENAME']) == 5 - module.SWAP_ATTEMPTS


def test_a_restored_copy_whose_sessions_will_not_end_is_not_moved(monkeypatch):
    monkeypatch.setattr(module, "SESSION_WAIT_SECONDS", 0)
    cluster = Cluster(
        {"shop__restoring": True},
        {"shop__restoring": [("bob", "app")]},
        sticky={"shop__restoring"},
    )
    assert failed_swap(monkeypatch, cluster) == (
        "shop__restoring still has 1 session (bob app) after they were terminated; shop not created"
    )
    assert cluster.databases == {"shop__restoring": False}


def test_closing_the_restored_copy_failing_is_named(monkeypatch):
    cluster = Cluster(
        {"shop__restoring": True},
        fail={"ALTER DATABASE": [FakeError("must be owner of database shop__restoring")]},
    )
    assert failed_swap(monkeypatch, cluster, replace=True) == (
        "closing shop__restoring failed: must be owner of database shop__restoring; "
        "shop left as it was"
    )


def test_dropping_the_previous_data_failing_says_where_it_is(monkeypatch):
    cluster = Cluster(
        {"shop": True, "shop__restoring": True},
        fail={"DROP DATABASE": [FakeError("database is being accessed")]},
    )
    assert failed_swap(monkeypatch, cluster, replace=True) == (
        "replaced shop, but dropping its previous data failed: database is being accessed; "
        "that data is still in database shop__previous"
    )
    assert cluster.databases == {"shop": True, "shop__previous": True}


def test_an_error_that_is_not_postgresqls_rolls_back_and_propagates(monkeypatch):
    cluster = Cluster(
        {"shop": True, "shop__restoring": True},
        fail={'ALTER DATABASE "shop__restoring" RENAME': [KeyboardInterrupt()]},
    )
    with pytest.raises(KeyboardInterrupt):
        swapped(monkeypatch, cluster, replace=True)
    assert set(cluster.databases) == {"shop", "shop__restoring"}


# -- main() ---------------------------------------------------------------------------------------

BACKUPS = [
    {"name": "shop_20261129T020000Z.dump", "database": "shop", "good": True,
     "started": "2026-11-29T02:00:00Z", "encryption": "none"},
    {"name": "shop_20261130T020000Z.dump", "database": "shop", "good": True,
     "started": "2026-11-30T02:00:00Z", "encryption": "none"},
]  # fmt: skip


def test_main_plans_a_restore_from_what_the_server_has(monkeypatch):
    cluster = Cluster({"shop": False}, {"shop": [("alice", "psql"), ("bob", None)]})
    fake_psycopg2(monkeypatch, cluster)
    args = {"action": "plan", "backups": BACKUPS, "database": "shop", "target": "shop",
            "replace": True, "terminate_sessions": True}  # fmt: skip
    rc, result = run(module, args)
    assert rc == 0, result
    assert result["msg"] == "restore shop_20261130T020000Z.dump into shop (replacing it)"
    assert (result["target"], result["replace"], result["sessions"]) == ("shop", True, 2)
    assert result["allow_connections"] is False
    assert result["changed"] is False
    rc, result = run(module, {**args, "terminate_sessions": False})
    assert rc == 1
    assert result["msg"].startswith("database shop has 2 sessions (alice psql, bob): ")
    assert result["opsplay_bad_input"] is False
    assert all(conn.closed for conn in cluster.conns)


def test_main_plan_into_a_new_database_named_after_the_backup(monkeypatch):
    fake_psycopg2(monkeypatch, Cluster({"shop": True}))
    rc, result = run(module, {"action": "plan", "backups": BACKUPS, "database": "shop"})
    assert rc == 0
    assert result["target"] == "shop_restored_20261130T020000"
    assert result["msg"] == "restore shop_20261130T020000Z.dump into shop_restored_20261130T020000"


def test_main_swaps_and_in_check_mode_only_says_it_would(monkeypatch):
    cluster = Cluster({"shop__restoring": True})
    fake_psycopg2(monkeypatch, cluster)
    rc, result = run(module, {"action": "swap", "target": "shop"}, check_mode=True)
    assert (rc, result["changed"], result["msg"]) == (
        0,
        True,
        "would move shop__restoring into place",
    )
    assert cluster.databases == {"shop__restoring": True}
    rc, result = run(module, {"action": "swap", "target": "shop"})
    assert (rc, result["msg"]) == (0, "created shop")
    assert cluster.databases == {"shop": True}


def test_main_refuses_an_unusable_target_as_bad_input(monkeypatch):
    cluster = Cluster({})
    fake_psycopg2(monkeypatch, cluster)
    rc, result = run(module, {"action": "swap", "target": 'shop"; DROP'})
    assert rc == 1
    assert result["msg"] == 'unusable target database name: shop"; DROP'
    assert result["opsplay_bad_input"] is True
    assert cluster.statements() == []


def test_main_without_a_server_or_psycopg2_fails_in_one_line(monkeypatch):
    fake_psycopg2(
        monkeypatch,
        FakeServer(connect_error=FakeOperationalError("connection refused\n\tIs it running?")),
    )
    rc, result = run(module, {"action": "swap", "target": "shop", "login_host": "db1"})
    assert (rc, result["msg"]) == (
        1,
        "PostgreSQL server not reachable at db1:5432: connection refused",
    )
    no_psycopg2(monkeypatch)
    rc, result = run(module, {"action": "swap", "target": "shop"})
    assert (rc, result["msg"]) == (1, "python3-psycopg2 is missing on the host")
