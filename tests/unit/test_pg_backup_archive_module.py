"""plugins/modules/pg_backup_archive.py on real backups in tmp_path: verify (recorded in the
manifests, damaged archives and manifests named), list (what `opsplay backups` and the restore
plan read), record (a restore test) and restore (plain and age-encrypted), each through main()
as Ansible runs it.

pg_restore is a recording stand-in (bin_dir; tests/unit/pg_backup_fakes.py): restoring into a
real server is proven by molecule/pg_backup (verify_restore.yml) and
molecule/pg_backup_encryption. age is the real program."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.opsplay.ops.plugins.modules import pg_backup_archive as module

from .pg_backup_fakes import (
    age_encrypt,
    age_key,
    calls,
    fake_tools,
    manifest_of,
    needs_age,
    run,
    write_backup,
)

T1, T2, T3 = "20261128T020000Z", "20261129T020000Z", "20261130T020000Z"
GOOD = b"PGDMP a whole archive END"


@pytest.fixture
def root(tmp_path):
    return tmp_path / "backups"


@pytest.fixture
def bin_dir(tmp_path):
    return fake_tools(tmp_path / "bin")


def args(root, bin_dir, action, **extra):
    return {"backup_dir": str(root), "bin_dir": str(bin_dir), "action": action, **extra}


# -- verify ---------------------------------------------------------------------------------------


def test_verify_records_a_changed_verdict_in_the_manifest_once(root, bin_dir):
    good = write_backup(root, "shop", T1, GOOD)
    cut = write_backup(root, "shop", T2, b"PGDMP cut sh")  # checksummed after it was cut
    rc, result = run(module, args(root, bin_dir, "verify"))
    assert rc == 0
    assert result["changed"] is True
    assert [(r["name"], r["ok"]) for r in result["verified"]] == [
        (good.name, True),
        (cut.name, False),
    ]
    problem = "unreadable archive (input file does not appear to be a valid archive)"
    assert result["msg"] == f"backup {cut.name} is bad: {problem}"
    assert manifest_of(cut)["verified"]["ok"] is False
    assert manifest_of(cut)["verified"]["problem"] == problem
    assert manifest_of(good)["verified"]["ok"] is True
    # nothing changed since: nothing rewritten
    before = cut.with_name(cut.name + ".json").read_text()
    rc, again = run(module, args(root, bin_dir, "verify"))
    assert (rc, again["changed"]) == (0, False)
    assert cut.with_name(cut.name + ".json").read_text() == before


def test_verify_in_check_mode_reports_without_writing(root, bin_dir):
    archive = write_backup(root, "shop", T1, GOOD)
    archive.write_bytes(b"PGDMP a whole archive EN!")
    before = archive.with_name(archive.name + ".json").read_text()
    rc, result = run(module, args(root, bin_dir, "verify"), check_mode=True)
    assert rc == 0
    assert result["changed"] is True
    assert "checksum" in result["bad"][0]["problem"]
    assert archive.with_name(archive.name + ".json").read_text() == before


def test_verify_of_named_backups_names_the_missing_and_leaves_an_unreadable_manifest_alone(
    root, bin_dir
):
    kept = write_backup(root, "shop", T1, GOOD)
    write_backup(root, "app", T1, GOOD)
    broken = root / "shop" / f"shop_{T2}.dump.json"
    broken.write_text("{not json")
    rc, result = run(
        module,
        args(root, bin_dir, "verify", names=[kept.name, broken.name[:-5], "shop_nope.dump"]),
    )
    assert rc == 0
    by_name = {r["name"]: r for r in result["verified"]}
    assert set(by_name) == {kept.name, broken.name[:-5], "shop_nope.dump"}  # not app's
    assert by_name["shop_nope.dump"] == {
        "name": "shop_nope.dump",
        "database": None,
        "ok": False,
        "problem": "no such backup",
    }
    assert by_name[broken.name[:-5]]["problem"].startswith("manifest unreadable (")
    assert broken.read_text() == "{not json"  # never rewritten into a "backup"


def test_verify_of_an_unlistable_backup_dir_fails_in_one_line(root, bin_dir, monkeypatch):
    """A set's directory that cannot be listed (EACCES: injected, the tests run as root)."""
    write_backup(root, "shop", T1, GOOD)
    real = os.listdir

    def listdir(path="."):
        if str(path).endswith("/shop"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    rc, result = run(module, args(root, bin_dir, "verify"))
    assert (rc, result["msg"]) == (1, f"permission denied: {root}/shop")


# -- list -----------------------------------------------------------------------------------------


def test_list_counts_good_and_bad_backups_and_names_the_newest_good(root, bin_dir):
    write_backup(root, "shop", T1, GOOD, restore_test={"at": "2026-11-28T05:00:00Z", "ok": True})
    newest = write_backup(root, "shop", T2, GOOD)
    write_backup(root, "shop", T3, GOOD, verified={"ok": False, "at": T3, "problem": "x"})
    rc, result = run(module, args(root, bin_dir, "list"))
    assert rc == 0
    assert result["changed"] is False
    assert result["msg"] == "3 backups"
    assert [b["good"] for b in result["backups"]] == [True, True, False]
    assert result["newest_good"]["shop"]["name"] == newest.name
    summary = result["summary"]["shop"]
    assert (summary["good"], summary["bad"]) == (2, 1)
    assert summary["restore_test_ok"] is True
    assert result["backups"][0]["encryption"] == "none"
    assert result["backups"][0]["on_disk"] == {"ok": True, "problem": "", "checked": "none"}


@pytest.mark.parametrize(
    ("recheck", "good", "problem"),
    [("none", True, ""), ("size", True, ""), ("checksums", False, "checksum")],
)
def test_list_rechecks_the_archives_as_asked(root, bin_dir, recheck, good, problem):
    archive = write_backup(root, "shop", T1, GOOD)
    archive.write_bytes(GOOD.replace(b"whole", b"WHOLE"))  # same size, other bytes
    rc, result = run(module, args(root, bin_dir, "list", recheck=recheck))
    assert rc == 0
    (listed,) = result["backups"]
    assert listed["good"] is good
    assert problem in listed["on_disk"]["problem"]
    assert "shop" not in result["newest_good"] or good


def test_list_sees_a_truncated_archive_by_its_size(root, bin_dir):
    archive = write_backup(root, "shop", T1, GOOD)
    archive.write_bytes(GOOD[:10])
    rc, result = run(module, args(root, bin_dir, "list", recheck="size"))
    assert rc == 0
    assert result["backups"][0]["good"] is False
    assert result["newest_good"] == {}


# -- record ---------------------------------------------------------------------------------------


def test_record_writes_the_restore_test_into_the_manifest(root, bin_dir):
    archive = write_backup(root, "shop", T1, GOOD)
    result_arg = {"ok": True, "tables": 3}
    rc, result = run(module, args(root, bin_dir, "record", name=archive.name, result=result_arg))
    assert rc == 0
    assert result["msg"] == f"recorded restore test of {archive.name}"
    recorded = manifest_of(archive)["restore_test"]
    assert recorded["ok"] is True and recorded["tables"] == 3 and recorded["at"].endswith("Z")
    assert manifest_of(archive)["sha256"]  # the rest of the manifest kept
    assert "manifest_path" not in manifest_of(archive)


def test_record_in_check_mode_writes_nothing_and_an_unknown_name_fails(root, bin_dir):
    archive = write_backup(root, "shop", T1, GOOD)
    rc, result = run(
        module, args(root, bin_dir, "record", name=archive.name, result={}), check_mode=True
    )
    assert (rc, result["changed"]) == (0, True)
    assert manifest_of(archive)["restore_test"] is None
    rc, result = run(module, args(root, bin_dir, "record", name="shop_nope.dump", result={}))
    assert (rc, result["msg"]) == (1, "no backup named shop_nope.dump")


# -- restore --------------------------------------------------------------------------------------


def test_restore_runs_pg_restore_into_the_database_stopping_at_the_first_error(root, bin_dir):
    archive = write_backup(root, "shop", T1, GOOD)
    rc, result = run(
        module, args(root, bin_dir, "restore", name=archive.name, dbname="shop_restored", jobs=4)
    )
    assert rc == 0
    assert result["msg"] == f"restored {archive.name} into shop_restored"
    assert result["changed"] is True
    assert calls(bin_dir, "pg_restore") == [
        ["--exit-on-error", "--no-password", "--dbname", "shop_restored", "--jobs", "4",
         str(archive)]
    ]  # fmt: skip


def test_restore_failures_and_check_mode(root, bin_dir, monkeypatch):
    archive = write_backup(root, "shop", T1, GOOD)
    rc, result = run(
        module, args(root, bin_dir, "restore", name=archive.name, dbname="x"), check_mode=True
    )
    assert (rc, result["msg"]) == (0, f"would restore {archive.name}")
    assert calls(bin_dir, "pg_restore") == []
    rc, result = run(module, args(root, bin_dir, "restore", name="shop_nope.dump", dbname="x"))
    assert (rc, result["msg"]) == (1, "no backup named shop_nope.dump")
    monkeypatch.setenv(
        "FAKE_PG_RESTORE_ERROR", 'pg_restore: error: could not execute query: ERROR:  role "a"'
    )
    rc, result = run(module, args(root, bin_dir, "restore", name=archive.name, dbname="x"))
    assert (rc, result["msg"]) == (1, 'pg_restore: could not execute query: ERROR:  role "a"')


@needs_age
def test_an_encrypted_backup_is_decrypted_into_pg_restore(root, bin_dir, tmp_path, monkeypatch):
    key, _, recipient = age_key(tmp_path)
    folder = root / "shop"
    folder.mkdir(parents=True)
    encrypted = age_encrypt(GOOD, tmp_path / "enc", recipient).read_bytes()
    archive = write_backup(root, "shop", T1, encrypted, ext=".dump.age", encryption="age")
    into = tmp_path / "restored"
    monkeypatch.setenv("FAKE_PG_RESTORE_INTO", str(into))
    base = args(root, bin_dir, "restore", name=archive.name, dbname="x")
    rc, result = run(module, {**base, "identity_file": str(key)})
    assert rc == 0, result
    assert into.read_bytes() == GOOD  # pg_restore read the plaintext from its stdin
    assert calls(bin_dir, "pg_restore") == [["--exit-on-error", "--no-password", "--dbname", "x"]]
    # only age ever saw the archive: no plaintext beside it
    assert sorted(os.listdir(folder)) == sorted(
        [archive.name, archive.name + ".json", archive.name + ".sha256"]
    )


@needs_age
def test_encrypted_restore_failures_are_one_line(root, bin_dir, tmp_path, monkeypatch):
    _, _, recipient = age_key(tmp_path, "right")
    wrong, wrong_text, _ = age_key(tmp_path, "wrong")
    encrypted = age_encrypt(GOOD, tmp_path / "enc", recipient).read_bytes()
    archive = write_backup(root, "shop", T1, encrypted, ext=".dump.age", encryption="age")
    base = args(root, bin_dir, "restore", name=archive.name, dbname="x")
    rc, result = run(module, base)
    assert rc == 1
    assert result["msg"] == (
        f"backup {archive.name} is encrypted (age): give its private key with "
        "pg_backup_encryption_identity or pg_backup_encryption_identity_file"
    )
    rc, result = run(module, {**base, "identity": wrong_text})
    assert rc == 1
    assert result["msg"].startswith(f"cannot decrypt backup {archive.name}: no identity matched")
    assert wrong_text.splitlines()[-1] not in json.dumps(result)  # the key never in the result
    # a damaged archive with the right key
    right = tmp_path / "right.txt"
    damaged = bytearray(archive.read_bytes())
    damaged[-3] ^= 1
    archive.write_bytes(bytes(damaged))
    rc, result = run(module, {**base, "identity_file": str(right)})
    assert rc == 1
    assert result["msg"].startswith(f"backup {archive.name}: cannot decrypt (")
    # pg_restore refusing what it reads
    archive.write_bytes(encrypted)
    monkeypatch.setenv("FAKE_PG_RESTORE_ERROR", "pg_restore: error: could not execute query: boom")
    rc, result = run(module, {**base, "identity_file": str(right)})
    assert (rc, result["msg"]) == (1, "pg_restore: could not execute query: boom")
    assert wrong.exists()
