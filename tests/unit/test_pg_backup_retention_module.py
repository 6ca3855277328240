"""plugins/modules/pg_backup_retention.py through main(), on real backups in tmp_path: what the
retention deletes (whole backups, manifest first), what it never touches (bad backups, other
databases), check mode, and its one-line failures. The GFS selection's edge cases:
test_pg_backup_gfs.py; a kill between its deletions: test_pg_backup_crash.py."""

from __future__ import annotations

import os

from ansible_collections.opsplay.ops.plugins.modules import pg_backup_retention as module

from .pg_backup_fakes import run, write_backup

DAYS = ["20261126T020000Z", "20261127T020000Z", "20261128T020000Z", "20261129T020000Z",
        "20261130T020000Z"]  # fmt: skip
KEEP_TWO = {"keep_last": 2, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}


def parts(folder):
    return sorted(os.listdir(folder))


def test_the_retention_deletes_whole_old_backups_and_never_a_bad_one(tmp_path):
    root = tmp_path / "backups"
    shop = [write_backup(root, "shop", day, b"PGDMP %d END" % i) for i, day in enumerate(DAYS)]
    bad = write_backup(
        root, "shop", "20261125T020000Z", b"PGDMP", verified={"ok": False, "problem": "x"}
    )
    app = [write_backup(root, "app", day, b"PGDMP app END") for day in DAYS[:3]]
    rc, result = run(module, {"backup_dir": str(root), "databases": ["shop"], **KEEP_TWO})
    assert rc == 0, result
    deleted = [a.name for a in shop[:3]]
    assert sorted(result["deleted"]) == deleted
    assert result["changed"] is True
    assert result["msg"] == "deleted: " + ", ".join(result["deleted"])
    kept = [bad, *shop[3:]]
    assert parts(root / "shop") == sorted(
        n for a in kept for n in (a.name, a.name + ".json", a.name + ".sha256")
    )
    assert len(parts(root / "app")) == 9  # another database: not asked for, untouched
    assert all(a.exists() for a in app)
    rc, again = run(module, {"backup_dir": str(root), "databases": ["shop"], **KEEP_TWO})
    assert (rc, again["changed"], again["deleted"], again["msg"]) == (
        0,
        False,
        [],
        "deleted: nothing",
    )


def test_not_good_backups_are_not_counted_as_kept(tmp_path):
    root = tmp_path / "backups"
    shop = [write_backup(root, "shop", day, b"PGDMP END") for day in DAYS[:3]]
    # the newest failed verification just now: two older good ones stay
    args = {"backup_dir": str(root), "not_good": [shop[2].name], **KEEP_TWO}
    rc, result = run(module, args)
    assert (rc, result["deleted"]) == (0, [])
    assert all(a.exists() for a in shop)


def test_check_mode_deletes_nothing(tmp_path):
    root = tmp_path / "backups"
    shop = [write_backup(root, "shop", day, b"PGDMP END") for day in DAYS]
    before = parts(root / "shop")
    rc, result = run(module, {"backup_dir": str(root), **KEEP_TWO}, check_mode=True)
    assert rc == 0
    assert sorted(result["deleted"]) == [a.name for a in shop[:3]]
    assert result["msg"].startswith("would delete: ")
    assert parts(root / "shop") == before


def test_an_unlistable_backup_dir_fails_in_one_line(tmp_path, monkeypatch):
    """EACCES is injected (the tests run as root)."""
    root = tmp_path / "backups"
    write_backup(root, "shop", DAYS[0], b"PGDMP END")
    real = os.listdir

    def listdir(path="."):
        if str(path) == str(root / "shop"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    rc, result = run(module, {"backup_dir": str(root), **KEEP_TWO})
    assert (rc, result["msg"]) == (1, f"permission denied: {root}/shop")


def test_an_os_error_while_deleting_fails_in_one_line(tmp_path, monkeypatch):
    root = tmp_path / "backups"
    for day in DAYS:
        write_backup(root, "shop", day, b"PGDMP END")

    def unlink(path, *a, **k):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(os, "unlink", unlink)
    rc, result = run(module, {"backup_dir": str(root), **KEEP_TWO})
    assert (rc, result["msg"]) == (1, f"{root}: Read-only file system")
