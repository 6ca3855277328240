"""opsplay.ops.pg_backup_restore_test: which backups are tested, how a failure is worded, that the
scratch database is dropped whatever happened and the result recorded (the decisions the role made
in Jinja and per-task rescue before). The server is a recording stand-in; molecule/pg_backup
restores for real."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import BackupError
from ansible_collections.opsplay.ops.plugins.modules import pg_backup_restore_test as rt

ROWS = {"public.orders": 5000, "public.customers": 200}


def manifest(database, started, good=True, rows=None, encryption=None):
    m = {
        "name": f"{database}_{started}.dump" + (".age" if encryption else ""),
        "database": database,
        # 20250402T010000Z -> 2025-04-02T01:00:00Z
        "started": f"{started[:4]}-{started[4:6]}-{started[6:11]}:{started[11:13]}:{started[13:]}",
        "ended": f"{started[:4]}-{started[4:6]}-{started[6:11]}:{started[11:13]}:{started[13:]}",
        "verified": {"ok": good, "problem": ""},
        "row_counts": rows,
        "restore_test": None,
    }
    if encryption:
        m["encryption"] = encryption
    return m


class Module:
    def __init__(self, root: Path, check_mode=False, **params):
        self.check_mode = check_mode
        self.params = {
            "backup_dir": str(root), "databases": [], "bin_dir": "", "login_host": "",
            "login_unix_socket": "/nonexistent", "login_port": 5432, "login_user": "postgres",
            "login_password": "", "identity": "", "identity_file": "", "maintenance_db": "postgres",
            "prefix": "opsplay_restore_test_", "jobs": 1,
        }  # fmt: skip
        self.params.update(params)


class Server:
    """What the module asked of PostgreSQL and pg_restore; restore fails for names in fail."""

    def __init__(self, fail=(), counts=None):
        self.calls, self.fail, self.counts = [], dict(fail), counts
        self.large_objects = 0
        self.inserted = None  # the server's statistics: as counted unless set


@pytest.fixture
def host(tmp_path, monkeypatch):
    root = tmp_path / "backups"
    server = Server()

    def make(manifests, check_mode=False, bad=(), **params):
        for m in manifests:
            folder = root / m["database"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / m["name"]).write_text("archive")
            (folder / (m["name"] + ".json")).write_text(json.dumps(m))
        test = rt.RestoreTest(Module(root, check_mode, **params))
        monkeypatch.setattr(
            test,
            "check",
            lambda m, reread=True, shallow=False: (
                "checksum mismatch" if m["name"] in bad else "",
                "checksum",
            ),
        )
        monkeypatch.setattr(test, "create", lambda db: server.calls.append(("create", db)))
        monkeypatch.setattr(test, "drop", lambda db: server.calls.append(("drop", db)) or "")

        def restore_into(m, db):
            server.calls.append(("restore", m["name"], db))
            if m["name"] in server.fail:
                raise BackupError(server.fail[m["name"]])

        monkeypatch.setattr(test, "restore_into", restore_into)
        monkeypatch.setattr(test, "count_rows", lambda db: dict(server.counts or ROWS))
        monkeypatch.setattr(
            test,
            "inserted_rows",
            lambda db: dict(server.counts or ROWS if server.inserted is None else server.inserted),
        )
        monkeypatch.setattr(test, "count_large_objects", lambda db: server.large_objects)
        return test

    make.server, make.root = server, root
    return make


def recorded(root: Path, m: dict) -> dict:
    return json.loads((root / m["database"] / (m["name"] + ".json")).read_text())["restore_test"]


def test_the_newest_verified_backup_of_each_database_is_tested_not_the_globals(host):
    old, new = (
        manifest("shop", "20250401T010000Z", rows=ROWS),
        manifest("shop", "20250402T010000Z", rows=ROWS),
    )
    unverified = manifest("shop", "20250403T010000Z", good=False)
    blog, globs = manifest("blog", "20250401T010000Z"), manifest("_globals", "20250402T010000Z")
    test = host([old, new, unverified, blog, globs])
    result = test.test_all()
    assert result["problems"] == []
    assert result["msg"] == f"restore test ok: {blog['name']}, {new['name']}"
    assert host.server.calls == [
        ("create", "opsplay_restore_test_blog"),
        ("restore", blog["name"], "opsplay_restore_test_blog"),
        ("drop", "opsplay_restore_test_blog"),
        ("create", "opsplay_restore_test_shop"),
        ("restore", new["name"], "opsplay_restore_test_shop"),
        ("drop", "opsplay_restore_test_shop"),
    ]
    saved = recorded(host.root, new)
    assert saved["ok"] is True and saved["message"] == "" and saved["database"] == "shop"
    assert recorded(host.root, old) is None


def test_a_failed_restore_is_named_recorded_and_its_scratch_database_dropped(host):
    shop = manifest("shop", "20250402T010000Z", rows=ROWS)
    host.server.fail[shop["name"]] = (
        "pg_restore: connecting to database for restore\n"
        'pg_restore: error: could not execute query: ERROR:  role "ghost" does not exist\n'
        "Command was: ALTER TABLE public.t OWNER TO ghost;"
    )
    result = host([shop]).test_all()
    said = 'could not execute query: ERROR:  role "ghost" does not exist'
    assert result["problems"] == [f"restore test of {shop['name']} failed: {said}"]
    assert host.server.calls[-1] == ("drop", "opsplay_restore_test_shop")
    assert recorded(host.root, shop)["ok"] is False
    assert recorded(host.root, shop)["message"] == said


def test_row_counts_that_differ_fail_the_test_naming_each_table(host):
    shop = manifest("shop", "20250402T010000Z", rows=ROWS)
    host.server.counts = {"public.orders": 4999, "public.extra": 1, "public.customers": 200}
    result = host([shop]).test_all()
    assert result["problems"] == [
        f"restore test of {shop['name']} failed: row counts differ:"
        " public.extra: backup none, restored 1, public.orders: backup 5000, restored 4999"
    ]


def test_large_objects_counted_in_the_archive_are_compared_when_recorded(host):
    """pg_backup_dump records large_objects (counted from the archive's lo_open calls) since
    issue 20; the restore test compares them, and does not for a manifest without the key."""
    shop = dict(manifest("shop", "20250402T010000Z", rows=ROWS), large_objects=2)
    blog = manifest("blog", "20250402T010000Z", rows=ROWS)  # an older manifest: no key
    host.server.large_objects = 1
    result = host([shop, blog]).test_all()
    assert result["problems"] == [
        f"restore test of {shop['name']} failed: row counts differ:"
        " large objects: backup 2, restored 1"
    ]


def test_bad_backups_are_named_and_not_restored_the_others_are(host):
    shop, blog = manifest("shop", "20250402T010000Z"), manifest("blog", "20250402T010000Z")
    result = host([shop, blog], bad={shop["name"]}).test_all()
    assert result["problems"] == [f"backup {shop['name']} is bad: checksum mismatch"]
    assert [c for c in host.server.calls if c[0] == "restore"] == [
        ("restore", blog["name"], "opsplay_restore_test_blog")
    ]


def test_check_mode_verifies_and_restores_nothing(host):
    shop = manifest("shop", "20250402T010000Z")
    result = host([shop], check_mode=True).test_all()
    assert result["msg"] == f"restore test would run: {shop['name']}"
    assert host.server.calls == [] and recorded(host.root, shop) is None


def test_nothing_to_test_or_no_key_for_encrypted_backups_is_one_line_before_anything(
    host, tmp_path
):
    with pytest.raises(BackupError, match=r"^no verified backup to restore-test in .*/backups$"):
        host([manifest("_globals", "20250402T010000Z")]).test_all()
    vault = manifest("vault", "20250402T010000Z", encryption="age")
    with pytest.raises(BackupError) as refused:
        host([vault]).test_all()
    assert str(refused.value).startswith(
        f"backups {vault['name']} are encrypted (age): give their private key with"
    )
    assert host.server.calls == []


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("pg_restore: error: input file is too short", "input file is too short"),
        ('database "x" already exists\n', 'database "x" already exists'),
        ("", "failed"),
    ],
)
def test_the_first_line_saying_what_went_wrong(text, line):
    assert rt.first_error(text) == line


def test_scratch_names_fit_postgresql_identifiers():
    assert (
        rt.scratch_name("opsplay_restore_test_", "d" * 80)
        == ("opsplay_restore_test_" + "d" * 80)[:63]
    )
    assert rt.count_differences(None, {"t": 1}) == []  # nothing recorded: nothing to compare


def test_the_servers_own_insert_counts_stand_in_for_count_only_when_they_match():
    recorded = {"public.orders": 3, "public.empty": 0}
    exact = []

    def count_exactly():
        exact.append(1)
        return {"public.orders": 3, "public.empty": 0}

    assert rt.rows_restored(recorded, dict(recorded), count_exactly) == recorded
    assert exact == []  # no table scanned a second time
    # statistics not flushed yet (or track_counts off): counted exactly, and that decides
    assert rt.rows_restored(recorded, {"public.orders": 0, "public.empty": 0}, count_exactly) == (
        recorded
    )
    # a table the statistics do not know (or one too many): counted exactly
    assert rt.rows_restored(recorded, {"public.orders": 3}, count_exactly) == recorded
    assert len(exact) == 2


def test_a_real_difference_is_reported_from_the_exact_count(host):
    new = manifest("shop", "20250402T010000Z", rows=ROWS)
    test = host([new])
    host.server.inserted = dict(ROWS)  # the statistics agree ...
    host.server.counts = {**ROWS, "public.orders": ROWS["public.orders"] - 1}
    result = test.test_all()  # ... so count(*) is not run, and the test passes on them
    assert result["problems"] == []
    host.server.inserted = {**ROWS, "public.orders": ROWS["public.orders"] + 5}
    result = test.test_all()  # they disagree: count(*) decides, and names the table
    assert result["problems"] == [
        f"restore test of {new['name']} failed: row counts differ: public.orders: backup 5000,"
        " restored 4999"
    ]


def verified(root: Path, m: dict) -> dict:
    return json.loads((root / m["database"] / (m["name"] + ".json")).read_text())["verified"]


def test_a_restore_is_the_whole_read_of_an_archive_never_read_whole_before(host, monkeypatch):
    # as pg_backup_dump records them: age's output never decrypted (vault), a plain archive's
    # bytes read whole by pg_restore as they were written (shop)
    vault = manifest("vault", "20250402T010000Z", rows=ROWS, encryption="age")
    broken = manifest("crm", "20250402T010000Z", rows=ROWS, encryption="age")
    shop = manifest("shop", "20250402T010000Z", rows=ROWS)
    test = host([vault, broken, shop], identity="AGE-SECRET-KEY-1X")
    host.server.fail[broken["name"]] = "pg_restore: error: could not read input file"
    checks = []
    monkeypatch.setattr(
        test, "check", lambda m, reread=True, shallow=False: checks.append((reread, shallow))
        or ("", "structure")
    )  # fmt: skip
    result = test.test_all()
    # checked shallow (checksum, age structure): the restore reads each archive whole
    assert checks == [(True, True)] * 3
    assert result["problems"] == [
        f"restore test of {broken['name']} failed: could not read input file"
    ]
    after = verified(host.root, vault)
    assert (after["ok"], after["check"], after["problem"]) == (True, "whole", "")
    assert verified(host.root, broken) == broken["verified"]  # not read whole: nothing new
    assert verified(host.root, shop) == shop["verified"]  # read whole as written already


# --- read once: an unencrypted custom archive is checksummed as pg_restore reads it -----------

FAKE_PG_RESTORE = """#!/bin/sh
# a stand-in pg_restore: keeps its arguments and what it read on stdin, then as told
printf '%s\\n' "$@" > "$0.args"
case "$(cat "$0.mode")" in
  ok) cat > "$0.read" ;;
  fail) cat > "$0.read"; echo "pg_restore: error: could not execute query" >&2; exit 1 ;;
  early) head -c 10 > "$0.read"; echo "pg_restore: error: unexpected end of file" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def once(tmp_path):
    """A RestoreTest whose pg_restore is the stand-in (tool directory), and one archive written
    with its .sha256 as pg_backup_dump writes them: (test, manifest, stand-in path)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "pg_restore"
    fake.write_text(FAKE_PG_RESTORE)
    fake.chmod(0o755)
    root = tmp_path / "backups"
    m = dict(manifest("shop", "20250402T010000Z", rows=ROWS), format="custom")
    folder = root / "shop"
    folder.mkdir(parents=True)
    archive = folder / m["name"]
    archive.write_bytes(b"PGDMP" + bytes(range(256)) * 5000)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (folder / (m["name"] + ".sha256")).write_text(f"{digest}  {m['name']}\n")
    m["path"] = str(archive)
    return rt.RestoreTest(Module(root, bin_dir=str(tools))), m, fake


def test_an_unencrypted_custom_archive_restored_by_one_job_is_read_once():
    test = rt.RestoreTest(Module(Path("/nonexistent")))
    custom = dict(manifest("shop", "20250402T010000Z"), format="custom")
    assert test.reads_once(custom)
    assert not test.reads_once(dict(custom, format="directory"))
    assert not test.reads_once(dict(custom, encryption="age"))
    assert not rt.RestoreTest(Module(Path("/nonexistent"), jobs=2)).reads_once(custom)
    assert not rt.RestoreTest(Module(Path("/nonexistent"), check_mode=True)).reads_once(custom)


def test_read_once_pg_restore_reads_the_whole_archive_on_stdin(once):
    test, m, fake = once
    Path(f"{fake}.mode").write_text("ok")
    test.restore_into(m, "scratch")
    assert Path(f"{fake}.read").read_bytes() == Path(m["path"]).read_bytes()
    args = Path(f"{fake}.args").read_text().split()
    assert args == ["--exit-on-error", "--no-password", "--dbname", "scratch"]  # no file: stdin


def test_read_once_a_failing_restore_of_a_sound_archive_is_the_restores_failure(once):
    test, m, fake = once
    Path(f"{fake}.mode").write_text("fail")
    with pytest.raises(BackupError, match="could not execute query"):
        test.restore_into(m, "scratch")


def test_read_once_a_changed_archive_is_bad_whatever_pg_restore_said(once):
    test, m, fake = once
    path = Path(m["path"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a byte flipped in place: same size
    path.write_bytes(bytes(data))
    Path(f"{fake}.mode").write_text("early")  # pg_restore stops after 10 bytes
    with pytest.raises(rt.ArchiveBad, match=rf"^checksum mismatch \({re.escape(m['name'])}\)$"):
        test.restore_into(m, "scratch")
    Path(f"{fake}.mode").write_text("ok")  # and when pg_restore itself saw nothing wrong
    with pytest.raises(rt.ArchiveBad, match="checksum mismatch"):
        test.restore_into(m, "scratch")
    path.unlink()
    with pytest.raises(rt.ArchiveBad, match=r"^archive missing$"):
        test.restore_into(m, "scratch")


def test_read_once_a_bad_archive_is_recorded_bad_and_not_as_restore_tested(once, monkeypatch):
    test, m, _ = once
    sound = dict(manifest("blog", "20250402T010000Z", rows=ROWS), format="custom")
    for each in (m, sound):
        folder = Path(test.root) / each["database"]
        folder.mkdir(exist_ok=True)
        (folder / (each["name"] + ".json")).write_text(json.dumps(each))
    monkeypatch.setattr(test, "check", lambda *a, **k: pytest.fail("checked before restoring"))
    monkeypatch.setattr(test, "create", lambda db: None)
    monkeypatch.setattr(test, "drop", lambda db: "")
    monkeypatch.setattr(test, "inserted_rows", lambda db: dict(ROWS))

    def restore_into(manifest, dbname):
        if manifest["name"] == m["name"]:
            raise rt.ArchiveBad(f"checksum mismatch ({m['name']})")

    monkeypatch.setattr(test, "restore_into", restore_into)
    result = test.test_all()
    assert result["problems"] == [f"backup {m['name']} is bad: checksum mismatch ({m['name']})"]
    assert [(c["name"], c["ok"], c["check"]) for c in result["verify"]["verified"]] == [
        (sound["name"], True, "checksum"),
        (m["name"], False, "checksum"),
    ]
    after = verified(Path(test.root), m)
    assert (after["ok"], after["check"]) == (False, "checksum")
    assert recorded(Path(test.root), m) is None  # never counted as a restore test
    assert recorded(Path(test.root), sound)["ok"] is True
