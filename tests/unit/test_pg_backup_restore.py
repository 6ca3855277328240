"""The pg_backup role's restore decisions (plugins/modules/pg_backup_restore.py): which
backup a restore takes, what it refuses before anything changes, and the swap's statements.
The swap itself runs against PostgreSQL in molecule/pg_backup (verify_restore.yml). Also the
backup's own message for a new archive cut short by a full disk (pg_backup_tools.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

LIBRARY = Path(__file__).parents[2] / "plugins" / "modules"
_spec = importlib.util.spec_from_file_location(
    "pg_backup_restore", LIBRARY / "pg_backup_restore.py"
)
assert _spec and _spec.loader
restore = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(restore)

HOST = "db1"
DIR = "/var/backups/postgresql"


def backup(database: str, started: str, good: bool = True, **extra: object) -> dict:
    stamp = started.replace("-", "").replace(":", "")
    ext = "sql" if database == "_globals" else "dump"
    return {"name": f"{database}_{stamp}.{ext}", "database": database, "started": started,
            "good": good, "encryption": "none", **extra}  # fmt: skip


def listing(*items: dict) -> list[dict]:
    """As pg_backup_archive's list returns them: oldest first, by start then name."""
    return sorted(items, key=lambda b: (b["started"], b["name"]))


def params(**overrides: object) -> dict:
    base = {"backups": [], "database": "shop", "backup": "latest", "target": "", "replace": False,
            "terminate_sessions": False, "keep_previous": False, "key_given": False,
            "host": HOST, "backup_dir": DIR}  # fmt: skip
    base.update(overrides)
    return base


# -- which backup (issue 16 item 2) ------------------------------------------------------------
T1, T2 = "2026-11-30T02:00:00Z", "2026-11-30T03:00:00Z"


@pytest.mark.parametrize("name", ["App", "Zeta", "_a", "_z", "shop", "_globalsx", "A_globals"])
def test_latest_is_the_databases_own_newest_backup_never_the_globals(name):
    # Globals dumped in the same second (every backup run) and an hour later: a name sorting
    # before '_globals' (App, '_a') took the globals file; one after it took its own by luck.
    backups = listing(backup(name, T1), backup("_globals", T1), backup("_globals", T2))
    assert restore.choose_backup(backups, name, "latest")["name"] == backup(name, T1)["name"]


def test_a_failed_newer_backup_of_the_same_database_is_skipped():
    backups = listing(backup("shop", T1), backup("shop", T2, good=False), backup("_globals", T2))
    assert restore.choose_backup(backups, "shop", "latest")["started"] == T1


def test_a_newer_backup_of_another_database_is_not_taken():
    backups = listing(backup("shop", T1), backup("blog", T2), backup("blog", T2, good=False))
    assert restore.choose_backup(backups, "shop", "latest")["database"] == "shop"


def test_names_are_case_sensitive():
    backups = listing(backup("app", T2), backup("App", T1))
    assert restore.choose_backup(backups, "App", "latest")["database"] == "App"
    assert restore.choose_backup(backups, "APP", "latest") is None


def test_a_named_backup_must_be_one_of_the_databases_own():
    backups = listing(backup("shop", T1), backup("blog", T2))
    assert restore.choose_backup(backups, "shop", backup("shop", T1)["name"])["database"] == "shop"
    assert restore.choose_backup(backups, "shop", backup("blog", T2)["name"]) is None
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(params(backups=backups, backup=backup("blog", T2)["name"]), {}, [])
    assert str(caught.value).endswith("(it is a backup of blog)")
    assert caught.value.bad_input


def test_an_unknown_database_names_itself_the_host_and_the_databases_with_backups():
    backups = listing(backup("shop", T1), backup("blog", T1), backup("_globals", T1),
                      backup("old", T1, good=False))  # fmt: skip
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(params(backups=backups, database="nosuchdb"), {}, [])
    assert str(caught.value) == (
        "no backup of database nosuchdb on db1 in /var/backups/postgresql; "
        "databases with backups: blog, shop"
    )
    assert caught.value.bad_input
    assert "\n" not in str(caught.value)


def test_only_failed_backups_of_the_database_is_said_so():
    backups = listing(backup("shop", T1, good=False), backup("_globals", T2))
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(params(backups=backups), {}, [])
    assert str(caught.value) == (
        "no verified backup of database shop on db1 in /var/backups/postgresql (1 failed); "
        "databases with backups: none"
    )


def test_no_database_given_is_bad_input():
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(params(database=""), {}, [])
    assert caught.value.bad_input
    assert "-e database=NAME" in str(caught.value)


# -- refusals before anything changes (issue 16 item 1) -----------------------------------------
SHOP = listing(backup("shop", T1))


def test_new_target_named_after_the_backup():
    result = restore.plan(params(backups=SHOP), {}, [])
    assert result["target"] == "shop_restored_20261130T020000"
    assert result["temporary"] == "shop_restored_20261130T020000__restoring"
    assert not result["replace"]


def test_existing_target_without_replace_is_bad_input():
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(params(backups=SHOP, target="shop"), {"shop": True}, [])
    assert caught.value.bad_input
    assert "replace it with -e replace=true" in str(caught.value)


def test_sessions_on_the_target_refuse_unless_terminate_sessions():
    sessions = [("app", "gunicorn"), ("alice", "psql")]
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(params(backups=SHOP, target="shop", replace=True), {"shop": True}, sessions)
    assert str(caught.value) == (
        "database shop has 2 sessions (app gunicorn, alice psql): nothing restored, shop left "
        "as it was; close them or end them with -e terminate_sessions=true"
    )
    assert not caught.value.bad_input  # the state of the host, not the options: exit 3
    result = restore.plan(
        params(backups=SHOP, target="shop", replace=True, terminate_sessions=True),
        {"shop": True},
        sessions,
    )
    assert result["replace"] and result["sessions"] == 2


def test_a_previous_database_left_over_refuses_naming_it():
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(
            params(backups=SHOP, target="shop", replace=True),
            {"shop": True, "shop__previous": True},
            [],
        )
    assert str(caught.value).startswith("database shop__previous exists (the data shop had")
    assert str(caught.value).endswith("nothing restored, shop left as it was")


def test_a_temporary_database_left_over_is_dropped_and_the_connection_setting_kept():
    result = restore.plan(
        params(backups=SHOP, target="shop", replace=True),
        {"shop": False, "shop__restoring": True},
        [],
    )
    assert result["leftover"] and result["allow_connections"] is False


def test_encrypted_backup_without_key_is_bad_input():
    backups = listing(backup("shop", T1, encryption="age"))
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(params(backups=backups), {}, [])
    assert caught.value.bad_input and "is encrypted (age)" in str(caught.value)


def test_unusable_target_name():
    with pytest.raises(restore.RestoreError) as caught:
        restore.plan(params(backups=SHOP, target='x"; drop'), {}, [])
    assert caught.value.bad_input


def test_the_swap_renames_aside_then_into_place_in_that_order():
    steps = restore.swap_statements("shop", "shop__restoring", "shop__previous", True, True)
    assert steps == [
        ("ALTER DATABASE {} RENAME TO {}", ("shop", "shop__previous")),
        ("ALTER DATABASE {} RENAME TO {}", ("shop__restoring", "shop")),
        ("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", ("shop",)),
    ]
    new = restore.swap_statements("shop", "shop__restoring", "shop__previous", False, True)
    assert [names for _, names in new] == [("shop__restoring", "shop"), ("shop",)]


# -- a backup with 0 bytes free (issue 16 item 6) ----------------------------------------------
# (plugins/module_utils/pg_backup_tools.py, used by pg_backup_dump)
from ansible_collections.opsplay.ops.plugins.module_utils import (  # noqa: E402
    pg_backup_tools as archive,
)


def test_a_new_archive_cut_short_on_a_full_disk_names_the_disk():
    problem = "incomplete (no end-of-dump marker)"
    assert archive.disk_full_problem("/b/_globals", 0, problem) == (
        "disk full on /b/_globals (0 bytes free); the new archive was cut short: "
        "incomplete (no end-of-dump marker)"
    )
    # with room left, a bad archive is a bad archive
    assert archive.disk_full_problem("/b/_globals", 50 << 20, problem) == ""
