"""Grandfather-father-son retention of pg_backup (plugins/module_utils/pg_backup_gfs.py): which
backups are deleted and why the others stay; a pure function over manifests, no host."""

from __future__ import annotations

from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_gfs import gfs

KEEP_NOTHING = {"keep_last": 0, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}


def backup(started: str, database: str = "shop", ok: bool = True) -> dict:
    """A manifest as module_utils/backup_manifest reads it, started at started (ISO, UTC)."""
    stamp = started.replace("-", "").replace(":", "")
    return {
        "name": f"{database}_{stamp}.dump",
        "database": database,
        "started": started,
        "ended": started,
        "verified": {"ok": ok},
    }


def names(items) -> list[str]:
    return sorted(m["name"] for m in items)


def test_keep_last_0_still_keeps_the_newest_verified_backup():
    items = [backup("2026-11-01T01:00:00Z"), backup("2026-11-02T01:00:00Z")]
    delete, kept = gfs(items, KEEP_NOTHING)
    assert names(delete) == ["shop_20261101T010000Z.dump"]
    assert kept == {"shop_20261102T010000Z.dump": "last"}


def test_keep_last_1_keeps_one_and_2_keeps_two():
    items = [backup(f"2026-11-0{day}T01:00:00Z") for day in (1, 2, 3)]
    assert len(gfs(items, dict(KEEP_NOTHING, keep_last=1))[0]) == 2
    delete, kept = gfs(items, dict(KEEP_NOTHING, keep_last=2))
    assert names(delete) == ["shop_20261101T010000Z.dump"]
    assert sorted(kept) == ["shop_20261102T010000Z.dump", "shop_20261103T010000Z.dump"]


def test_several_backups_a_day_keep_the_newest_of_each_day():
    items = [
        backup("2026-11-01T01:00:00Z"),
        backup("2026-11-01T13:00:00Z"),
        backup("2026-11-02T01:00:00Z"),
        backup("2026-11-02T13:00:00Z"),
    ]
    delete, kept = gfs(items, dict(KEEP_NOTHING, keep_daily=2))
    assert names(delete) == ["shop_20261101T010000Z.dump", "shop_20261102T010000Z.dump"]
    assert kept == {
        "shop_20261102T130000Z.dump": "last+daily",
        "shop_20261101T130000Z.dump": "daily",
    }


def test_weeks_across_a_year_boundary_are_iso_weeks():
    # 2026-12-31 (Thu) and 2027-01-02 (Sat) are both in ISO week 2026-W53: one week, not two.
    items = [
        backup("2026-12-24T01:00:00Z"),  # 2026-W52
        backup("2026-12-31T01:00:00Z"),  # 2026-W53
        backup("2027-01-02T01:00:00Z"),  # 2026-W53
        backup("2027-01-05T01:00:00Z"),  # 2027-W01
    ]
    delete, kept = gfs(items, dict(KEEP_NOTHING, keep_weekly=3))
    assert names(delete) == ["shop_20261231T010000Z.dump"]
    assert kept == {
        "shop_20270105T010000Z.dump": "last+weekly",
        "shop_20270102T010000Z.dump": "weekly",
        "shop_20261224T010000Z.dump": "weekly",
    }


def test_months_count_months_that_have_backups():
    items = [backup(f"2026-0{month}-15T01:00:00Z") for month in (1, 3, 5)]
    delete, kept = gfs(items, dict(KEEP_NOTHING, keep_monthly=2))
    assert names(delete) == ["shop_20260115T010000Z.dump"]
    assert kept["shop_20260315T010000Z.dump"] == "monthly"


def test_bad_backups_are_never_deleted_and_never_counted():
    bad_new = backup("2026-11-03T01:00:00Z", ok=False)
    items = [backup("2026-11-01T01:00:00Z"), backup("2026-11-02T01:00:00Z"), bad_new]
    delete, kept = gfs(items, dict(KEEP_NOTHING, keep_last=1))
    # the newest verified backup is kept, not displaced by the newer bad one, which stays too
    assert names(delete) == ["shop_20261101T010000Z.dump"]
    assert kept == {"shop_20261102T010000Z.dump": "last"}
    assert bad_new["name"] not in names(delete)


def test_not_good_names_count_as_bad():
    items = [backup("2026-11-01T01:00:00Z"), backup("2026-11-02T01:00:00Z")]
    delete, kept = gfs(items, KEEP_NOTHING, not_good={"shop_20261102T010000Z.dump"})
    assert delete == []
    assert kept == {"shop_20261101T010000Z.dump": "last"}


def test_a_database_without_verified_backups_loses_nothing():
    items = [
        backup("2026-11-01T01:00:00Z", database="blog", ok=False),
        backup("2026-11-02T01:00:00Z", database="blog", ok=False),
        backup("2026-11-01T01:00:00Z"),
        backup("2026-11-02T01:00:00Z"),
    ]
    delete, kept = gfs(items, KEEP_NOTHING)
    assert names(delete) == ["shop_20261101T010000Z.dump"]
    assert list(kept) == ["shop_20261102T010000Z.dump"]


def test_an_unreadable_manifest_is_not_good():
    broken = dict(backup("2026-11-03T01:00:00Z"), unreadable="Expecting value")
    items = [backup("2026-11-01T01:00:00Z"), broken]
    delete, kept = gfs(items, KEEP_NOTHING)
    assert delete == [] and list(kept) == ["shop_20261101T010000Z.dump"]
