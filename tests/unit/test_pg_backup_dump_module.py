"""plugins/modules/pg_backup_dump.py through main(): what a backup run leaves on disk (archive,
checksum, manifest, nothing else), what it refuses, what a failed dump leaves (nothing of it,
earlier backups untouched), reuse of fresh backups, row counts in pg_dump's snapshot, and
age-encrypted dumps that are never written in plaintext.

pg_dump, pg_dumpall and pg_restore are recording stand-ins (the module's bin_dir option) and
psycopg2 a recorded fake (tests/unit/pg_backup_fakes.py): there is no PostgreSQL server here.
molecule/pg_backup and molecule/pg_backup_encryption prove the real thing. age is real."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import os_user, pg_backup_tools
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import newest_others
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_tools import compress_option
from ansible_collections.opsplay.ops.plugins.modules import pg_backup_dump as module

from .pg_backup_fakes import (
    FakeModule,
    FakeServer,
    age_decrypt,
    age_key,
    calls,
    fake_psycopg2,
    fake_tools,
    host_params,
    manifest_of,
    needs_age,
    run,
    write_backup,
)


def answers(databases=("app", "shop")):
    def answer(sql, args, conn):
        if sql == "SHOW server_version":
            return [("15.8",)]
        if "FROM pg_database" in sql:
            return [(d,) for d in databases]
        raise AssertionError(sql)  # no other query: the rows are counted from the archive

    return answer


@pytest.fixture
def server(monkeypatch):
    server = FakeServer(answers())
    fake_psycopg2(monkeypatch, server)
    return server


@pytest.fixture
def root(tmp_path):
    return tmp_path / "backups"


@pytest.fixture
def bin_dir(tmp_path):
    return fake_tools(tmp_path / "bin")


def args(root, bin_dir, **extra):
    return {"backup_dir": str(root), "bin_dir": str(bin_dir), **extra}


def files(folder):
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def whole(folder, name):
    """The backup name in folder: its three parts, the checksum file matching the archive."""
    archive = folder / name
    assert files(folder) == sorted([name, name + ".json", name + ".sha256"])
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (folder / (name + ".sha256")).read_text() == f"{digest}  {name}\n"
    return manifest_of(archive)


# -- a backup run ---------------------------------------------------------------------------------


def test_a_run_dumps_the_globals_then_each_database_manifest_last(root, bin_dir, server):
    rc, result = run(module, args(root, bin_dir, databases=["shop"], compress="zstd:3"))
    assert rc == 0, result
    assert result["changed"] is True
    globals_name, shop_name = (b["name"] for b in result["backups"])
    assert result["msg"] == f"backed up: {globals_name}, {shop_name}; reused fresh backups: none"
    assert globals_name.startswith("_globals_") and globals_name.endswith(".sql")
    assert shop_name.startswith("shop_") and shop_name.endswith(".dump")
    assert files(root) == ["_globals", "shop"]  # never app, not asked for
    manifest = whole(root / "shop", shop_name)
    data = (root / "shop" / shop_name).read_bytes()
    assert data == b"PGDMP dump of shop END"
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["size_bytes"] == len(data)
    assert (manifest["format"], manifest["compress"], manifest["server_version"]) == (
        "custom",
        "zstd:3",
        "15.8",
    )
    assert manifest["verified"]["ok"] is True and manifest["row_counts"] is None
    assert manifest["verified"]["check"] == "written"  # read by pg_restore on its way
    assert manifest["started"] <= manifest["ended"]
    assert "encryption" not in manifest
    assert whole(root / "_globals", globals_name)["format"] == "sql"
    (dump,) = calls(bin_dir, "pg_dump")
    assert dump[:6] == ["--format", "custom", "--lock-wait-timeout", "60s", "--no-password",
                        "--compress"]  # fmt: skip
    assert dump[-2:] == ["--dbname", "shop"] and "--file" not in dump  # to the module's pipe
    # read whole once, on its way to the file: pg_restore read the bytes from its stdin
    assert calls(bin_dir, "pg_restore") == [["--file", os.devnull]]
    assert server.conns and all(conn.closed for conn in server.conns)


def test_pg_restore_reads_the_very_bytes_written(root, bin_dir, server, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_PG_RESTORE_INTO", str(tmp_path / "read"))
    rc, result = run(module, args(root, bin_dir, databases=["shop"], globals=False))
    assert rc == 0, result
    archive = root / "shop" / result["backups"][0]["name"]
    assert (tmp_path / "read").read_bytes() == archive.read_bytes() == b"PGDMP dump of shop END"


def test_check_mode_writes_nothing(root, bin_dir, server):
    rc, result = run(module, args(root, bin_dir), check_mode=True)
    assert rc == 0
    assert result["changed"] is True
    assert result["backups"] == [{"database": d, "name": None} for d in ("_globals", "app", "shop")]
    assert not root.exists()
    assert calls(bin_dir, "pg_dump") == []


def test_a_directory_format_dump_is_checksummed_file_by_file(root, bin_dir, server):
    rc, result = run(
        module, args(root, bin_dir, databases=["shop"], globals=False, format="directory", jobs=3)
    )
    assert rc == 0, result
    (backup,) = result["backups"]
    archive = root / "shop" / backup["name"]
    assert backup["name"].endswith(".dir") and archive.is_dir()
    sums = (root / "shop" / (backup["name"] + ".sha256")).read_text()
    assert sums.splitlines() == sorted(
        f"{hashlib.sha256((archive / part).read_bytes()).hexdigest()}  {backup['name']}/{part}"
        for part in os.listdir(archive)
    )
    assert manifest_of(archive)["sha256"] == hashlib.sha256(sums.encode()).hexdigest()
    dump = calls(bin_dir, "pg_dump")[0]
    assert dump[dump.index("--jobs") + 1] == "3"


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("databases", "message"),
    [
        (["nope"], "database nope does not exist"),
        (["nope", "shop", "gone"], "databases nope, gone do not exist"),
    ],
)
def test_databases_that_do_not_exist_are_refused_before_anything_is_written(
    root, bin_dir, server, databases, message
):
    rc, result = run(module, args(root, bin_dir, databases=databases))
    assert (rc, result["msg"]) == (1, message)
    assert not root.exists()


def test_database_names_unusable_as_directories_are_refused(root, bin_dir, monkeypatch):
    fake_psycopg2(monkeypatch, FakeServer(answers(databases=("shop", ".hidden", "a/b"))))
    rc, result = run(module, args(root, bin_dir))
    assert (rc, result["msg"]) == (1, "database names unusable as directory names: .hidden, a/b")
    assert not root.exists()


def test_an_unreachable_server_is_one_line(root, bin_dir, monkeypatch):
    from .pg_backup_fakes import FakeOperationalError

    fake_psycopg2(
        monkeypatch, FakeServer(connect_error=FakeOperationalError("connection refused\nmore"))
    )
    rc, result = run(module, args(root, bin_dir))
    assert (rc, result["msg"]) == (
        1,
        "PostgreSQL server not reachable at /var/run/postgresql:5432: connection refused",
    )


# -- failures leave nothing of the failed dump ----------------------------------------------------


def test_a_failed_dump_leaves_nothing_of_it_and_names_what_completed(
    root, bin_dir, server, monkeypatch
):
    earlier = write_backup(root, "shop", "20261129T020000Z", b"PGDMP dump of shop END")
    monkeypatch.setenv("FAKE_PG_DUMP_ERROR", "pg_dump: error: query failed: ERROR:  boom")
    monkeypatch.setenv("FAKE_PG_DUMP_FAILING", "shop")
    rc, result = run(module, args(root, bin_dir))  # _globals, app, then shop
    assert rc == 1
    done = [n for n in files(root / "_globals") + files(root / "app") if n[-4:] in (".sql", "dump")]
    assert result["msg"] == (
        "backup of database shop failed: pg_dump: query failed: ERROR:  boom; no backup written, "
        f"earlier backups untouched (completed before the failure: {', '.join(done)})"
    )
    # nothing of the failed dump, not even a temporary file; the earlier backup as it was
    assert files(root / "shop") == sorted(
        [earlier.name, earlier.name + ".json", earlier.name + ".sha256"]
    )
    assert earlier.read_bytes() == b"PGDMP dump of shop END"


def test_a_table_locked_beyond_the_lock_wait_timeout_is_named(root, bin_dir, server, monkeypatch):
    """What pg_dump 15 says when --lock-wait-timeout runs out (its LOCK TABLE is cancelled)."""
    monkeypatch.setenv(
        "FAKE_PG_DUMP_ERROR",
        "pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\n"
        "pg_dump: detail: Query was: LOCK TABLE public.orders IN ACCESS SHARE MODE",
    )
    rc, result = run(module, args(root, bin_dir, databases=["shop"], globals=False))
    assert rc == 1
    assert result["msg"] == (
        "backup of database shop failed: lock wait timeout: table public.orders is locked by "
        "another session; no backup written, earlier backups untouched"
    )
    assert files(root / "shop") == []


def test_an_archive_failing_verification_is_removed_and_named(root, bin_dir, server, monkeypatch):
    monkeypatch.setenv("FAKE_PG_RESTORE_ERROR", "pg_restore: error: could not read from input")
    rc, result = run(module, args(root, bin_dir, databases=["shop"], globals=False))
    assert rc == 1
    assert result["msg"] == (
        "backup of database shop failed: the new archive failed verification: unreadable "
        "archive (could not read from input); no backup written, earlier backups untouched"
    )
    assert files(root / "shop") == []


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_killed_pg_dump_leaves_nothing_and_says_so(root, bin_dir, server, monkeypatch,
                                                     tmp_path, encrypted):  # fmt: skip
    if encrypted and shutil.which("age") is None:
        pytest.skip("age is not installed")
    earlier = write_backup(root, "shop", "20261129T020000Z", b"PGDMP dump of shop END")
    monkeypatch.setenv("FAKE_PG_DUMP_KILLED", "1")
    extra = {}
    if encrypted:
        extra = {"encryption": "age", "recipients": [age_key(tmp_path)[2]]}
    rc, result = run(module, args(root, bin_dir, databases=["shop"], globals=False, **extra))
    assert rc == 1
    assert result["msg"] == (
        "backup of database shop failed: pg_dump was killed (signal 9); no backup written, "
        "earlier backups untouched"
    )
    assert files(root / "shop") == sorted([earlier.name, earlier.name + ".json",
                                           earlier.name + ".sha256"])  # fmt: skip


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_disk_filling_up_mid_stream_leaves_nothing(root, bin_dir, server, monkeypatch,
                                                     tmp_path, encrypted):  # fmt: skip
    """The archive file's write fails with ENOSPC in the middle of the one pass (the file is
    written by the module, from pg_dump's pipe or age's): nothing is left, the disk is named."""
    import errno

    from ansible_collections.opsplay.ops.plugins.module_utils import pg_backup_stream

    if encrypted and shutil.which("age") is None:
        pytest.skip("age is not installed")

    def full(self, block):
        self.handle.write(block[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pg_backup_stream.Written, "__call__", full)
    extra = {"encryption": "age", "recipients": [age_key(tmp_path)[2]]} if encrypted else {}
    rc, result = run(module, args(root, bin_dir, databases=["shop"], globals=False, **extra))
    assert rc == 1
    assert result["msg"] == (
        f"backup of database shop failed: disk full (No space left on device) while writing "
        f"{root / 'shop'}; no backup written, earlier backups untouched"
    )
    assert files(root / "shop") == []


def test_an_archive_cut_short_by_a_full_disk_says_so(root, bin_dir, server, monkeypatch):
    """A full disk is simulated by the free space the module reads (no small tmpfs here)."""
    monkeypatch.setenv("FAKE_PG_RESTORE_ERROR", "pg_restore: error: could not read from input")
    monkeypatch.setattr(pg_backup_tools, "free_bytes", lambda folder: 8192)
    rc, result = run(module, args(root, bin_dir, databases=["shop"], globals=False))
    assert rc == 1
    assert (
        f"failed: disk full on {root / 'shop'} (8192 bytes free); the new archive was cut "
        in (result["msg"])
    )
    assert files(root / "shop") == []


def test_a_write_error_is_worded_and_undone(root, bin_dir, server, monkeypatch):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, "commit_backup", full)
    rc, result = run(module, args(root, bin_dir, databases=["shop"], globals=False))
    assert rc == 1
    assert "disk full (No space left on device) while writing " in result["msg"]
    assert files(root / "shop") == []


def test_leftovers_of_an_interrupted_run_are_removed_and_reported(root, bin_dir, server):
    folder = root / "shop"
    folder.mkdir(parents=True)
    for leftover in (".shop_20261101T000000Z.dump.tmp", "shop_20261101T000000Z.dump"):
        (folder / leftover).write_text("x")
    (folder / "notes.txt").write_text("the operator's")
    rc, result = run(module, args(root, bin_dir, databases=["shop"], globals=False))
    assert rc == 0
    assert sorted(result["leftovers_removed"]) == [
        "shop/.shop_20261101T000000Z.dump.tmp",
        "shop/shop_20261101T000000Z.dump",
    ]
    assert "notes.txt" in files(folder)
    assert not any("20261101" in name for name in files(folder))


# -- reuse, names, row counts ---------------------------------------------------------------------


def test_a_fresh_backup_is_reused_only_as_configured(root, bin_dir, server, tmp_path):
    base = args(root, bin_dir, databases=["shop"], globals=False, reuse_newer_than=3600)
    rc, first = run(module, base)
    name = first["backups"][0]["name"]
    rc, second = run(module, base)
    assert (rc, second["changed"], second["backups"]) == (0, False, [])
    assert second["reused"] == [{"database": "shop", "name": name}]
    assert second["msg"] == f"backed up: none; reused fresh backups: {name}"
    assert len(calls(bin_dir, "pg_dump")) == 1
    # an old one is not fresh
    manifest = manifest_of(root / "shop" / name)
    manifest["ended"] = "2026-01-01T00:00:00Z"
    (root / "shop" / (name + ".json")).write_text(json.dumps(manifest))
    dump = module.Dump(FakeModule(host_params(root, bin_dir, reuse_newer_than=3600)))
    assert dump.fresh("shop") is None
    # nor one made without the encryption now configured
    manifest["ended"] = first["backups"][0] and manifest["started"]
    (root / "shop" / (name + ".json")).write_text(json.dumps(manifest))
    assert dump.fresh("shop") == name
    encrypted = host_params(root, bin_dir, reuse_newer_than=3600, encryption="age",
                            recipients=["age1x"])  # fmt: skip
    assert module.Dump(FakeModule(encrypted)).fresh("shop") is None


def test_a_name_already_taken_waits_for_the_next_second(root, monkeypatch):
    folder = root / "shop"
    folder.mkdir(parents=True)
    first = datetime.datetime(2026, 11, 30, 2, 0, 0, tzinfo=datetime.UTC)
    moments = iter([first, first, first + datetime.timedelta(seconds=1)])
    monkeypatch.setattr(module, "now", lambda: next(moments))
    slept = []
    monkeypatch.setattr(module.time, "sleep", slept.append)
    (folder / "shop_20261130T020000Z.dump.json").write_text("{}")  # taken by a backup
    (folder / ".shop_20261130T020000Z.dump.tmp").touch()  # and a dump under way
    dump = module.Dump(FakeModule(host_params(root, "")))
    name, started = dump.new_name("shop", str(folder), ".dump")
    assert name == "shop_20261130T020001Z.dump"
    assert started == first + datetime.timedelta(seconds=1)
    assert slept == [0.5, 0.5]


def test_row_counts_are_the_archives_own_counted_as_pg_restore_reads_it(root, bin_dir, server,
                                                                        monkeypatch):  # fmt: skip
    monkeypatch.setenv("FAKE_ROWS", "4242")
    rc, result = run(
        module, args(root, bin_dir, databases=["shop"], globals=False, row_counts=True)
    )
    assert rc == 0, result
    manifest = manifest_of(root / "shop" / result["backups"][0]["name"])
    assert manifest["row_counts"] == {"public.orders": 4242}
    assert calls(bin_dir, "pg_restore") == [["--data-only", "--file", "-"]]
    # no query of its own: the database is read once, by pg_dump
    assert [c.kwargs["dbname"] for c in server.conns] == ["postgres"]
    assert "--snapshot" not in calls(bin_dir, "pg_dump")[0]


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_rows_that_cannot_be_counted_fail_the_backup(root, bin_dir, server, monkeypatch, fmt):
    monkeypatch.setenv("FAKE_COPY_END", "")  # pg_restore's COPY data ends without its \\.
    rc, result = run(
        module,
        args(root, bin_dir, databases=["shop"], globals=False, row_counts=True, format=fmt),
    )
    assert rc == 1
    assert result["msg"] == (
        "backup of database shop failed: the new archive failed verification: row counts: the "
        "data of public.orders ends without its end-of-data line (truncated); no backup "
        "written, earlier backups untouched"
    )
    assert files(root / "shop") == []


def test_a_directory_archive_is_read_once_for_its_rows(root, bin_dir, server):
    rc, result = run(
        module,
        args(root, bin_dir, databases=["shop"], globals=False, row_counts=True, format="directory"),
    )
    assert rc == 0, result
    archive = root / "shop" / result["backups"][0]["name"]
    assert manifest_of(archive)["row_counts"] == {"public.orders": 42}
    assert calls(bin_dir, "pg_restore") == [["--data-only", "--file", "-", str(archive.parent / (
        "." + archive.name + ".tmp"))]]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "level", "value"),
    [("gzip", -1, ""), ("gzip", 0, "0"), ("gzip", 1, "1"), ("zstd", 3, "zstd:3"),
     ("lz4", -1, "lz4"), ("zstd", 0, "0")],
)  # fmt: skip
def test_compression_method_and_level_as_pg_dump_16_takes_them(method, level, value):
    params = {"compress": "", "compress_method": method, "compress_level": level}
    assert compress_option(params, "pg_dump", lambda tool: (16, "16.4")) == value


def test_lz4_and_zstd_are_refused_by_pg_dump_15_before_anything_is_written(root, bin_dir, server):
    rc, result = run(
        module, args(root, bin_dir, databases=["shop"], compress_method="zstd", compress_level=3)
    )
    assert rc == 1
    assert result["msg"] == (
        "backup refused: compression zstd needs pg_dump 16 or later, this host's pg_dump is 15.8 "
        "(use pg_backup_compress_method gzip); nothing written"
    )
    assert calls(bin_dir, "pg_dump") == [["--version"]] and not root.exists()


@pytest.fixture
def reverify_two(root, bin_dir, server):
    """main() backing up shop alone, then re-verifying the two newest older backups of it."""

    def backup():
        return run(
            module,
            args(root, bin_dir, databases=["shop"], globals=False, verify_existing=True,
                 reverify_newest=2),
        )  # fmt: skip

    return backup


def test_a_run_reverifies_only_the_newest_older_backups(root, bin_dir, reverify_two):
    older = [
        write_backup(root, "shop", stamp, b"PGDMP dump of shop END")
        for stamp in ("20261127T020000Z", "20261128T020000Z", "20261129T020000Z")
    ]
    rc, result = reverify_two()
    assert rc == 0, result
    assert [v["name"] for v in result["verify"]["verified"]] == [o.name for o in older[1:]]
    # the new backup read whole once, on its way to the file; the two newest older ones, read
    # whole when they were written, are checksummed (the same bytes), not read by pg_restore
    assert calls(bin_dir, "pg_restore") == [["--file", os.devnull]]


def test_a_reverified_backup_is_read_whole_unless_its_manifest_records_a_whole_read(
    root, bin_dir, reverify_two
):
    changed = write_backup(root, "shop", "20261128T020000Z", b"PGDMP dump of shop END")
    never = write_backup(
        root, "shop", "20261129T020000Z", b"PGDMP dump of shop END",
        verified={"ok": False, "at": "2026-11-29T02:00:00Z", "problem": "not yet"},
    )  # fmt: skip
    changed.write_bytes(b"PGDMP dump of shoP END")  # a byte changed in place, same size
    rc, result = reverify_two()
    assert rc == 0, result
    verified = {v["name"]: (v["ok"], v["problem"]) for v in result["verify"]["verified"]}
    assert verified == {changed.name: (False, f"checksum mismatch ({changed.name})"),
                        never.name: (True, "")}  # fmt: skip
    # the one without a recorded good verification was read whole again, by pg_restore
    assert [r[-1] for r in calls(bin_dir, "pg_restore")[1:]] == [str(never)]


def test_newest_others_per_database():
    manifests = [{"name": n, "database": n[0]} for n in ("a1", "b1", "a2", "a3", "b2", "a4")]
    assert newest_others(manifests, {"a4"}, 2) == ["a2", "a3", "b1", "b2"]
    assert newest_others(manifests, {"a4"}, 0) == []


# -- encrypted ------------------------------------------------------------------------------------


@needs_age
def test_an_encrypted_backup_is_age_all_the_way_and_read_whole_on_the_way(root, bin_dir, server,
                                                                          tmp_path):  # fmt: skip
    key, _, recipient = age_key(tmp_path)
    rc, result = run(
        module, args(root, bin_dir, databases=["shop"], encryption="age", recipients=[recipient])
    )
    assert rc == 0, result
    globals_name, shop_name = (b["name"] for b in result["backups"])
    assert globals_name.endswith(".sql.age") and shop_name.endswith(".dump.age")
    manifest = whole(root / "shop", shop_name)
    assert (manifest["encryption"], manifest["recipients"]) == ("age", [recipient])
    assert age_decrypt(root / "shop" / shop_name, key) == b"PGDMP dump of shop END"
    assert b"cluster dump complete" in age_decrypt(root / "_globals" / globals_name, key)
    assert b"PGDMP" not in (root / "shop" / shop_name).read_bytes()
    # pg_restore read the plaintext from its stdin: no path to a plaintext file
    assert calls(bin_dir, "pg_restore") == [["--file", os.devnull]]
    dump = calls(bin_dir, "pg_dump")[0]
    assert "--file" not in dump


@needs_age
def test_an_unusable_recipient_is_refused_before_connecting(root, bin_dir, monkeypatch):
    server = FakeServer(answers())
    fake_psycopg2(monkeypatch, server)
    rc, result = run(module, args(root, bin_dir, encryption="age", recipients=["age1nope"]))
    assert rc == 1
    assert result["msg"].startswith("backup refused: unusable age recipient 'age1nope': ")
    assert server.conns == [] and not root.exists()


# -- as the PostgreSQL OS user (os_user) ----------------------------------------------------------
# As root, the module makes backup_dir the user's, then backs up in a forked child dropped to the
# user (module_utils/os_user.py, no become). The real drop, to nobody: the stand-ins run with the
# system's python3 (the venv's may sit under root's 0700 home) in a directory nobody may use.

root_only = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
    reason="dropping to another user needs root (and the system's python3 for the stand-ins)",
)
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def open_dir():
    """A directory every user may enter, its tools' directory nobody's (the stand-ins record
    their calls beside themselves)."""
    where = Path(tempfile.mkdtemp(prefix="opsplay-os-user-"))
    where.chmod(0o755)
    tools = fake_tools(where / "bin")
    for tool in tools.iterdir():
        lines = tool.read_text().splitlines(keepends=True)
        tool.write_text("#!/usr/bin/python3\n" + "".join(lines[1:]))
    os.chown(tools, NOBODY.pw_uid, NOBODY.pw_gid)
    yield where
    shutil.rmtree(where)


def nobody_server(monkeypatch):
    """The fake server, answering only a connection of nobody's (peer authentication)."""

    def answer(sql, query_args, conn):
        if os.geteuid() != NOBODY.pw_uid:
            raise AssertionError(f"connected as uid {os.geteuid()}, not nobody")
        return answers()(sql, query_args, conn)

    server = FakeServer(answer)
    fake_psycopg2(monkeypatch, server)
    return server


@root_only
def test_as_root_the_backup_is_the_os_users_written_in_a_child(open_dir, monkeypatch):
    server = nobody_server(monkeypatch)
    backups, tools = open_dir / "var" / "backups", open_dir / "bin"
    rc, result = run(module, args(backups, tools, databases=["shop"], os_user="nobody"))
    assert rc == 0, result
    assert result["as_root"] is True and result["changed"] is True
    shop_name = result["backups"][1]["name"]
    assert whole(backups / "shop", shop_name)["verified"]["ok"] is True
    # root made the directory the user's; everything in it is the user's, 0600 in 0700
    st = backups.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o700)
    for path in backups.rglob("*"):
        assert path.stat().st_uid == NOBODY.pw_uid, path
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    # pg_dump and pg_restore ran as the user (their call records are its files) ...
    for tool in ("pg_dumpall", "pg_dump", "pg_restore"):
        assert (tools / (tool + ".calls")).stat().st_uid == NOBODY.pw_uid
    # ... and so did every connection: the child's, none of this process's
    assert server.conns == []


@root_only
def test_as_root_a_failure_in_the_child_is_the_module_failure_in_one_line(open_dir, monkeypatch):
    nobody_server(monkeypatch)
    backups = open_dir / "backups"
    rc, result = run(module, args(backups, open_dir / "bin", databases=["gone"], os_user="nobody"))
    assert rc == 1
    assert result["msg"] == "database gone does not exist"
    assert os.listdir(backups) == []  # the directory made, nothing in it


@root_only
def test_as_root_check_mode_makes_no_directory(open_dir, monkeypatch):
    nobody_server(monkeypatch)
    backups = open_dir / "backups"
    rc, result = run(module, args(backups, open_dir / "bin", os_user="nobody"), check_mode=True)
    assert rc == 0, result
    assert result["changed"] is True and not backups.exists()
    assert [b["database"] for b in result["backups"]] == ["_globals", "app", "shop"]


@needs_age
def test_a_refusal_comes_before_the_directory(root, bin_dir, server):
    me = pwd.getpwuid(os.geteuid()).pw_name
    rc, result = run(module, args(root, bin_dir, encryption="age", recipients=[], os_user=me))
    assert rc == 1 and result["msg"].startswith("backup refused: encryption age needs")
    assert not root.exists()


def test_as_another_user_nothing_is_done_and_become_is_asked_for(root, bin_dir, server,
                                                                 monkeypatch):  # fmt: skip
    monkeypatch.setattr(os_user.os, "geteuid", lambda: 4242)
    rc, result = run(module, args(root, bin_dir, os_user="nobody"))
    assert rc == 0, result
    assert result == {
        "changed": False,
        "needs_become": True,
        "msg": f"running as uid 4242: only root can give {root} to OS user nobody",
        "invocation": result["invocation"],
    }
    assert not root.exists() and server.conns == [] and calls(bin_dir, "pg_dump") == []


def test_as_the_user_without_its_directory_become_is_asked_for(root, bin_dir, server, monkeypatch):
    monkeypatch.setattr(os_user.os, "geteuid", lambda: NOBODY.pw_uid)
    rc, result = run(module, args(root, bin_dir, os_user="nobody", databases=["shop"]))
    assert (rc, result["needs_become"], result["changed"]) == (0, True, False)
    assert result["msg"] == f"{root} is missing: only root can make it OS user nobody's"
    assert not root.exists() and server.conns == [] and calls(bin_dir, "pg_dump") == []


def test_as_the_user_with_its_directory_the_backup_runs_in_the_module(root, bin_dir, server):
    root.mkdir(mode=0o700)
    me = pwd.getpwuid(os.geteuid()).pw_name
    rc, result = run(module, args(root, bin_dir, databases=["shop"], os_user=me))
    assert rc == 0, result
    assert result["changed"] is True and len(server.conns) >= 1  # this process connected
