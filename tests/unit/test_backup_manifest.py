"""plugins/module_utils/backup_manifest.py: the one rule for reading pg_backup's manifests
(what pg_backup, preflight's backup gate and `opsplay status` all count as a backup)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import backup_manifest as bm


def make(root: Path, database: str, stamp: str, *, ok=True, ext=".dump", data=None, **fields):
    """A backup as pg_backup_archive leaves it: archive, .sha256 and manifest (written last)."""
    folder = root / database
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{database}_{stamp}{ext}"
    data = data if data is not None else f"PGDMP {name}".encode() * 50
    (folder / name).write_bytes(data)
    (folder / f"{name}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    iso = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
    manifest = {
        "name": name,
        "database": database,
        "started": iso,
        "ended": iso,
        "size_bytes": len(data),
        "verified": {"ok": ok, "at": iso, "problem": "" if ok else "broken"},
    }
    manifest.update(fields)
    manifest = {k: v for k, v in manifest.items() if v is not None}
    (folder / f"{name}.json").write_text(json.dumps(manifest))
    return folder / name


def names(listed):
    return [m["name"] for m in listed]


def test_manifests_lists_every_set_oldest_first_globals_included(tmp_path):
    make(tmp_path, "shop", "20261124T020000Z")
    make(tmp_path, "_globals", "20261124T010000Z", ext=".sql")
    make(tmp_path, "crm", "20261123T020000Z")
    make(tmp_path, "shop", "20261123T030000Z")
    listed = bm.manifests(str(tmp_path))
    assert names(listed) == [
        "crm_20261123T020000Z.dump",
        "shop_20261123T030000Z.dump",
        "_globals_20261124T010000Z.sql",
        "shop_20261124T020000Z.dump",
    ]
    assert [bm.backup_set(m) for m in listed] == ["crm", "shop", "_globals", "shop"]
    assert listed[0]["path"] == str(tmp_path / "crm" / "crm_20261123T020000Z.dump")
    assert listed[0]["manifest_path"].endswith("crm_20261123T020000Z.dump.json")


def test_databases_filter_keeps_globals(tmp_path):
    make(tmp_path, "shop", "20261124T020000Z")
    make(tmp_path, "crm", "20261124T020000Z")
    make(tmp_path, "_globals", "20261124T010000Z", ext=".sql")
    assert {bm.backup_set(m) for m in bm.manifests(str(tmp_path), ["shop"])} == {
        "shop",
        "_globals",
    }


def test_hidden_files_temporaries_and_loose_files_are_not_backups(tmp_path):
    make(tmp_path, "shop", "20261124T020000Z")
    (tmp_path / "shop" / ".shop_20261124T030000Z.dump.json.tmp").write_text("{}")
    (tmp_path / "shop" / ".hidden.json").write_text("{}")
    (tmp_path / ".trash").mkdir()
    (tmp_path / ".trash" / "x.json").write_text("{}")
    (tmp_path / "notes.json").write_text("{}")  # a file, not a set's directory
    assert names(bm.manifests(str(tmp_path))) == ["shop_20261124T020000Z.dump"]
    assert bm.backup_sets(str(tmp_path)) == ["shop"]


def test_a_missing_backup_dir_is_no_backups_and_an_unlistable_one_raises(tmp_path):
    assert bm.manifests(str(tmp_path / "absent")) == []
    assert bm.backup_sets(str(tmp_path / "absent")) == []
    (tmp_path / "shop").mkdir()
    os.chmod(tmp_path / "shop", 0)
    try:
        if os.access(tmp_path / "shop", os.R_OK):
            pytest.skip("running as root: permissions do not apply")
        with pytest.raises(OSError):
            bm.manifests(str(tmp_path))
    finally:
        os.chmod(tmp_path / "shop", 0o700)


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "Expecting property name enclosed in double quotes"),
        ("", "Expecting value"),
        ("[1, 2]", "not a JSON object"),
        ('"text"', "not a JSON object"),
    ],
)
def test_an_unreadable_manifest_is_listed_as_a_bad_backup_never_skipped(tmp_path, content, reason):
    good = make(tmp_path, "shop", "20261124T020000Z")
    Path(f"{good}.json").write_text(content)
    (listed,) = bm.manifests(str(tmp_path))
    assert listed["name"] == "shop_20261124T020000Z.dump"
    assert listed["database"] == "shop" and listed["path"] == str(good)
    assert listed["unreadable"].startswith(reason)
    assert not bm.is_good(listed)
    assert bm.manifest_problem(listed).startswith("manifest unreadable (" + reason)
    assert bm.on_disk_problem(listed).startswith("manifest unreadable (")
    assert bm.newest_verified([listed]) == {}


def test_an_unreadable_manifest_file_is_listed_too(tmp_path):
    good = make(tmp_path, "shop", "20261124T020000Z")
    os.chmod(f"{good}.json", 0)
    try:
        if os.access(f"{good}.json", os.R_OK):
            pytest.skip("running as root: permissions do not apply")
        (listed,) = bm.manifests(str(tmp_path))
        assert "Permission denied" in listed["unreadable"] and not bm.is_good(listed)
    finally:
        os.chmod(f"{good}.json", 0o600)


def test_a_manifest_that_cannot_be_opened_is_listed_too_even_as_root(tmp_path):
    good = make(tmp_path, "shop", "20261124T020000Z")
    Path(f"{good}.json").unlink()
    Path(f"{good}.json").mkdir()  # open() fails whoever runs this
    (listed,) = bm.manifests(str(tmp_path))
    assert "Is a directory" in listed["unreadable"] and not bm.is_good(listed)
    assert listed["path"] == str(good)


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"ended": None}, "manifest incomplete: no ended"),
        ({"started": None}, "manifest incomplete: no started"),
        ({"ended": "yesterday"}, "manifest incomplete: ended: not a timestamp: 'yesterday'"),
        ({"started": 1700000000}, "manifest incomplete: started: not a timestamp: 1700000000"),
    ],
)
def test_a_manifest_without_valid_times_is_a_bad_backup(tmp_path, fields, problem):
    make(tmp_path, "shop", "20261124T020000Z", **fields)
    (listed,) = bm.manifests(str(tmp_path))
    assert bm.manifest_problem(listed).startswith(problem)
    assert not bm.is_good(listed)
    assert bm.newest_verified([listed]) == {}


@pytest.mark.parametrize(
    "verified",
    [None, {"ok": False, "problem": "x"}, {"ok": "true"}, {"ok": 1}, "ok", {}],
)
def test_only_a_recorded_passed_verification_is_good(tmp_path, verified):
    make(tmp_path, "shop", "20261124T020000Z", verified=verified)
    (listed,) = bm.manifests(str(tmp_path))
    assert bm.manifest_problem(listed) == ""
    assert not bm.is_good(listed)


def test_a_verified_backup_is_good(tmp_path):
    make(tmp_path, "shop", "20261124T020000Z")
    (listed,) = bm.manifests(str(tmp_path))
    assert bm.is_good(listed) and bm.on_disk_problem(listed, checksums=True) == ""


def test_on_disk_missing_truncated_grown_and_changed_archives(tmp_path):
    path = make(tmp_path, "shop", "20261124T020000Z", data=b"x" * 100)
    (listed,) = bm.manifests(str(tmp_path))
    path.write_bytes(b"x" * 40)
    assert bm.on_disk_problem(listed) == "truncated: 40 of 100 bytes"
    path.write_bytes(b"x" * 101)
    assert bm.on_disk_problem(listed) == "size changed: 101 bytes, 100 recorded"
    path.write_bytes(b"y" * 100)
    assert bm.on_disk_problem(listed) == ""
    assert bm.on_disk_problem(listed, checksums=True) == f"checksum mismatch ({path.name})"
    path.unlink()
    assert bm.on_disk_problem(listed) == "archive missing"


def test_checksum_file_problems(tmp_path):
    path = make(tmp_path, "shop", "20261124T020000Z")
    Path(f"{path}.sha256").write_text(f"{'0' * 64}  other.dump\n")
    assert bm.checksum_problem(str(path)) == "archive files differ from the checksum file"
    Path(f"{path}.sha256").unlink()
    assert bm.checksum_problem(str(path)).startswith("checksum file unreadable (")


def test_a_directory_archive_is_sized_and_checksummed_file_by_file(tmp_path):
    folder = tmp_path / "shop" / "shop_20261124T020000Z.dir"
    folder.mkdir(parents=True)
    (folder / "toc.dat").write_bytes(b"a" * 10)
    (folder / "3001.dat.gz").write_bytes(b"b" * 20)
    assert bm.archive_size(str(folder)) == 30
    lines = "".join(
        f"{bm.sha256_file(str(p))}  {folder.name}/{p.name}\n" for p in sorted(folder.iterdir())
    )
    Path(f"{folder}.sha256").write_text(lines)
    assert bm.checksum_problem(str(folder)) == ""
    (folder / "toc.dat").write_bytes(b"c" * 10)
    assert bm.checksum_problem(str(folder)) == f"checksum mismatch ({folder.name}/toc.dat)"


def test_newest_verified_per_set_skips_bad_and_damaged_backups(tmp_path):
    make(tmp_path, "shop", "20261122T020000Z")
    older = make(tmp_path, "shop", "20261123T020000Z")
    newest = make(tmp_path, "shop", "20261124T020000Z")
    make(tmp_path, "shop", "20261125T020000Z", ok=False)  # newer, failed its verification
    make(tmp_path, "crm", "20261124T020000Z")
    Path(f"{make(tmp_path, 'crm', '20261125T020000Z')}.json").write_text("{")
    make(tmp_path, "_globals", "20261124T010000Z", ext=".sql")
    make(tmp_path, "empty", "20261124T010000Z", ok=False)
    found = bm.newest_verified(bm.manifests(str(tmp_path)))
    assert {k: v["name"] for k, v in found.items()} == {
        "shop": newest.name,
        "crm": "crm_20261124T020000Z.dump",
        "_globals": "_globals_20261124T010000Z.sql",
    }
    with open(newest, "r+b") as handle:  # truncated: the one before is the newest backup
        handle.truncate(10)
    found = bm.newest_verified(bm.manifests(str(tmp_path)))
    assert found["shop"]["name"] == older.name


def test_newest_verified_with_checksums_sees_a_byte_changed_in_place(tmp_path):
    older = make(tmp_path, "shop", "20261123T020000Z")
    newest = make(tmp_path, "shop", "20261124T020000Z")
    data = bytearray(newest.read_bytes())
    data[3] ^= 0xFF
    newest.write_bytes(bytes(data))
    listed = bm.manifests(str(tmp_path))
    assert bm.newest_verified(listed)["shop"]["name"] == newest.name
    assert bm.newest_verified(listed, checksums=True)["shop"]["name"] == older.name


def test_last_restore_test_per_set(tmp_path):
    make(
        tmp_path,
        "shop",
        "20261123T020000Z",
        restore_test={"at": "2026-11-24T05:00:00Z", "ok": True},
    )
    make(
        tmp_path,
        "shop",
        "20261124T020000Z",
        restore_test={"at": "2026-11-24T04:00:00Z", "ok": False},
    )
    make(tmp_path, "crm", "20261124T020000Z", restore_test={"at": "soon", "ok": True})
    make(tmp_path, "_globals", "20261124T020000Z", ext=".sql", restore_test="yes")
    tests = bm.last_restore_test(bm.manifests(str(tmp_path)))
    assert set(tests) == {"shop"}  # a test with no valid time says nothing
    assert tests["shop"]["ok"] is True and tests["shop"]["at"] == "2026-11-24T05:00:00Z"
    assert tests["shop"]["backup"] == "shop_20261123T020000Z.dump"


# -- what a recorded verification read ------------------------------------------------------------


@pytest.mark.parametrize(
    ("verified", "encryption", "whole"),
    [
        ({"ok": True, "check": "whole"}, "age", True),
        ({"ok": True, "check": "whole"}, None, True),
        # as written, or recorded by an older opsplay: pg_restore read the very bytes written,
        # but an encrypted archive's bytes were never decrypted (or only checked without the key)
        ({"ok": True}, None, True),
        ({"ok": True, "check": "written"}, None, True),
        ({"ok": True}, "none", True),
        ({"ok": True}, "age", False),
        ({"ok": True, "check": "written"}, "age", False),
        ({"ok": True, "check": "structure"}, "age", False),
        ({"ok": True, "check": "checksum"}, None, False),
        ({"ok": False, "check": "whole"}, None, False),
        ({"ok": "yes", "check": "whole"}, None, False),
        (None, None, False),
    ],
)
def test_only_a_passed_whole_read_lets_the_checksum_stand_for_it(verified, encryption, whole):
    manifest = {"verified": verified, "encryption": encryption}
    assert bm.read_whole({k: v for k, v in manifest.items() if v is not None}) is whole


@pytest.mark.parametrize(
    ("recorded", "encryption", "problem", "check", "news"),
    [
        (None, None, "", "whole", True),
        # a pass over a pass: only the first whole read of bytes not read whole before
        ({"ok": True}, "age", "", "whole", True),
        ({"ok": True, "check": "structure"}, "age", "", "whole", True),
        ({"ok": True}, None, "", "whole", False),
        ({"ok": True, "check": "whole"}, "age", "", "whole", False),
        ({"ok": True, "check": "whole"}, "age", "", "structure", False),  # never a downgrade
        ({"ok": True}, "age", "", "structure", False),
        ({"ok": True, "check": "whole"}, None, "", "checksum", False),
        # a pass over a failure, and any new failure
        ({"ok": False, "problem": "x", "check": "checksum"}, "age", "", "structure", True),
        ({"ok": True, "check": "whole"}, None, "checksum mismatch (a)", "checksum", True),
        ({"ok": False, "problem": "x", "check": "whole"}, None, "x", "whole", False),
        ({"ok": False, "problem": "x", "check": "whole"}, None, "y", "whole", True),
        ({"ok": False, "problem": "x"}, None, "x", "whole", True),
    ],
)
def test_what_a_verification_records(recorded, encryption, problem, check, news):
    manifest = {"verified": recorded} | ({"encryption": encryption} if encryption else {})
    assert bm.verification_news(manifest, problem, check) is news


def test_a_whole_read_failure_is_the_one_recorded_by_a_whole_read():
    assert bm.whole_read_failure({"verified": {"ok": False, "problem": "x", "check": "whole"}}) == (
        "x"
    )
    for verified in ({"ok": False, "problem": "x"}, {"ok": False, "check": "structure"}, {}):
        assert bm.whole_read_failure({"verified": verified}) == ""
