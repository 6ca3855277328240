"""plugins/module_utils/pg_backup_age.py with the real age program and real keys: what can be
checked of an encrypted archive without its key, refusing unusable recipients, encrypting a
producer's output while a reader reads it whole, and decrypting with the right, a wrong or an
unusable key. The producers and readers are small stand-in programs (pg_dump and pg_restore
against a server: molecule/pg_backup_encryption)."""

from __future__ import annotations

import io
import os
import stat
import subprocess

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import pg_backup_age as age
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import BackupError

from .pg_backup_fakes import FakeModule, age_decrypt, age_encrypt, age_key, needs_age

GLOBALS_SQL = b"CREATE ROLE app;\n--\n-- PostgreSQL database cluster dump complete\n--\n"


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


# -- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (
            "age: error: no identity matched any of the recipients\n"
            "age: report unexpected or unhelpful errors at https://filippo.io/age/report\n",
            "no identity matched any of the recipients",
        ),
        (
            "age: error: write /b/x: no space left on device\n",
            "disk full (No space left on device)",
        ),
        ("", "failed"),
        (None, "failed"),
        ("\n  \nsomething odd\n", "something odd"),
    ],
)
def test_age_message_is_one_line_without_prefix_or_footer(stderr, message):
    assert age.age_message(stderr) == message


@pytest.mark.parametrize(
    ("message", "identity"),
    [
        ("no identity matched any of the recipients", True),
        ('reading "/tmp/key": failed to parse', True),
        ("header MAC mismatch", False),
        ("failed", False),
    ],
)
def test_identity_problems_are_told_from_archive_problems(message, identity):
    assert age.identity_problem(message) is identity


# -- the structure, without the key ---------------------------------------------------------------


@needs_age
def test_a_whole_age_file_has_a_sound_structure_a_cut_one_does_not(tmp_path):
    _, _, recipient = age_key(tmp_path)
    for size in (1, 100, 64 * 1024, 64 * 1024 + 1, 200 * 1024):
        path = age_encrypt(os.urandom(size), tmp_path / f"a{size}.age", recipient)
        assert age.age_structure(str(path)) == "", size
    # Encrypted nothing is one empty chunk (its 16-byte tag): counted as cut short. No dump
    # is empty (pg_restore or the end-of-dump marker refuses it first), so this costs nothing.
    empty = age_encrypt(b"", tmp_path / "empty.age", recipient)
    assert age.age_structure(str(empty)) == "incomplete age payload (truncated?)"
    whole = (tmp_path / "a100.age").read_bytes()
    long = (tmp_path / f"a{200 * 1024}.age").read_bytes()  # 3 whole chunks and one of 8 KiB
    # a chunk cut to 10 bytes (less than its tag), no chunk at all, a last chunk cut to 10 bytes
    for cut in (whole[:-106], whole[:-116], long[: len(long) - (8 * 1024 + 16) + 10]):
        (tmp_path / "cut.age").write_bytes(cut)
        assert age.age_structure(str(tmp_path / "cut.age")) == (
            "incomplete age payload (truncated?)"
        )


def test_files_that_are_no_age_files_are_named(tmp_path):
    plain = tmp_path / "plain.dump"
    plain.write_bytes(b"PGDMP" + b"x" * 100)
    assert age.age_structure(str(plain)) == "not an age file (no age-encryption.org/v1 header)"
    header_only = tmp_path / "header.age"
    header_only.write_bytes(age.AGE_MAGIC + b"-> X25519 abc\nbody")
    assert age.age_structure(str(header_only)) == "incomplete age header"
    no_recipient = tmp_path / "norecipient.age"
    no_recipient.write_bytes(age.AGE_MAGIC + b"--- mac\n" + b"\0" * 100)
    assert age.age_structure(str(no_recipient)) == "age header without recipients"


# -- pipelines ------------------------------------------------------------------------------------


def test_a_pipeline_left_early_kills_what_still_runs_and_closes_its_files():
    with age.pipeline(2) as (procs, errors):
        procs.append(subprocess.Popen(["sleep", "30"]))
        procs.append(subprocess.Popen(["true"]))
        procs[1].wait()
        files = list(errors)
    assert procs[0].returncode == -9
    assert procs[1].returncode == 0
    assert all(handle.closed for handle in files)


def test_outcome_gives_exit_codes_and_stderr_texts():
    with age.pipeline(2) as (procs, errors):
        procs.append(subprocess.Popen(sh("echo first >&2; exit 3"), stderr=errors[0]))
        procs.append(subprocess.Popen(sh("echo second >&2"), stderr=errors[1]))
        codes, texts = age.outcome(procs, errors)
    assert codes == [3, 0]
    assert texts == ["first\n", "second\n"]


def test_tee_feeds_every_sink_still_reading_and_returns_the_tail():
    data = os.urandom(3 * (1 << 20) + 123)
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that went away: writes raise BrokenPipeError
    gone = os.fdopen(write_end, "wb", buffering=0)
    kept = io.BytesIO()
    kept.close = lambda: None  # keep its value readable after tee closes it
    tail = age.tee(io.BytesIO(data), [gone, kept])
    assert kept.getvalue() == data
    assert tail == data[-400:]
    assert gone.closed


# -- recipients -----------------------------------------------------------------------------------


def enc_params(**overrides):
    params = {"encryption": "age", "format": "custom", "recipients": []}
    params.update(overrides)
    return params


def test_no_encryption_checks_nothing():
    module = FakeModule({})
    age.check_recipients(module, {"encryption": "none", "format": "directory", "recipients": []})
    assert module.warnings == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            enc_params(format="directory", recipients=["age1x"]),
            "backup refused: encryption age needs pg_backup_format custom "
            "(a directory-format archive is many files); nothing written",
        ),
        (
            enc_params(),
            "backup refused: encryption age needs at least one recipient "
            "(pg_backup_encryption_recipients); nothing written",
        ),
    ],
)
def test_unusable_encryption_settings_are_refused(params, message):
    with pytest.raises(BackupError) as refused:
        age.check_recipients(FakeModule({}), params)
    assert str(refused.value) == message


def test_without_age_a_backup_is_refused_and_check_mode_warns(monkeypatch):
    monkeypatch.setattr(age.shutil, "which", lambda name: None)
    params = enc_params(recipients=["age1whatever"])
    with pytest.raises(BackupError, match=r"age is not installed on the host \(apt install age\)"):
        age.check_recipients(FakeModule({}), params)
    module = FakeModule({}, check_mode=True)
    age.check_recipients(module, params)
    assert module.warnings == ["age is not installed yet: recipients not checked"]


@needs_age
def test_each_recipient_is_tried_with_age_and_a_bad_one_is_named(tmp_path):
    _, _, good = age_key(tmp_path)
    age.check_recipients(FakeModule({}), enc_params(recipients=[good]))
    with pytest.raises(BackupError) as refused:
        age.check_recipients(FakeModule({}), enc_params(recipients=[good, "age1notakey"]))
    message = str(refused.value)
    assert message.startswith("backup refused: unusable age recipient 'age1notakey': ")
    assert message.endswith("; nothing written")
    assert "age: error" not in message


# -- encrypting -----------------------------------------------------------------------------------


@needs_age
def test_the_producers_output_is_encrypted_and_read_whole_on_the_way(tmp_path):
    key, _, recipient = age_key(tmp_path)
    data = os.urandom(300 * 1024)
    (tmp_path / "data").write_bytes(data)
    out = tmp_path / "out.age"
    seen = tmp_path / "seen"
    age.encrypt_stream(
        ["cat", str(tmp_path / "data")], str(out), [recipient], dict(os.environ),
        sh(f"cat > {seen}"), "db",
    )  # fmt: skip
    assert seen.read_bytes() == data  # the reader got every byte
    assert age_decrypt(out, key) == data
    assert age.age_structure(str(out)) == ""


@needs_age
def test_globals_are_encrypted_when_they_end_with_the_marker_else_refused(tmp_path):
    key, _, recipient = age_key(tmp_path)
    (tmp_path / "globals.sql").write_bytes(GLOBALS_SQL)
    out = tmp_path / "g.sql.age"
    env = dict(os.environ)
    age.encrypt_stream(
        ["cat", str(tmp_path / "globals.sql")], str(out), [recipient], env, None, "g"
    )
    assert age_decrypt(out, key) == GLOBALS_SQL
    (tmp_path / "cut.sql").write_bytes(GLOBALS_SQL[:20])
    with pytest.raises(BackupError) as refused:
        age.encrypt_stream(
            ["cat", str(tmp_path / "cut.sql")], str(out), [recipient], env, None, "g"
        )
    assert str(refused.value) == (
        "the new archive failed verification: incomplete (no end-of-dump marker)"
    )


@needs_age
def test_encrypting_failures_name_the_program_that_failed(tmp_path):
    _, _, recipient = age_key(tmp_path)
    env = dict(os.environ)
    dump = tmp_path / "pg_dump"
    dump.write_text('#!/bin/sh\necho "pg_dump: error: connection to server failed" >&2\nexit 1\n')
    dump.chmod(0o755)
    with pytest.raises(BackupError) as failed:
        age.encrypt_stream([str(dump)], str(tmp_path / "o.age"), [recipient], env, None, "db")
    assert str(failed.value) == "pg_dump: connection to server failed"
    # age cannot write its output
    with pytest.raises(BackupError) as failed:
        age.encrypt_stream(
            ["echo", "x"], str(tmp_path / "missing" / "o.age"), [recipient], env, None, "/b/db"
        )
    assert str(failed.value).startswith("age: ")
    assert str(failed.value).endswith(" in /b/db")
    # the reader refuses what it read
    reader = sh('cat >/dev/null; echo "pg_restore: error: did not find magic string" >&2; exit 1')
    with pytest.raises(BackupError) as failed:
        age.encrypt_stream(["echo", "x"], str(tmp_path / "o.age"), [recipient], env, reader, "db")
    assert str(failed.value) == (
        "the new archive failed verification: unreadable archive (did not find magic string)"
    )


# -- the identity ---------------------------------------------------------------------------------


def test_an_identity_text_is_a_private_temporary_file_until_cleanup(tmp_path):
    identity = age.Identity({"identity": "  AGE-SECRET-KEY-1ABC  \n", "identity_file": ""})
    assert identity.given()
    path = identity.path()
    assert identity.path() == path  # written once
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as handle:
        assert handle.read() == "AGE-SECRET-KEY-1ABC\n"
    identity.cleanup()
    assert not os.path.exists(path)
    identity.cleanup()  # twice is harmless


def test_an_identity_file_is_used_where_it_is_and_a_missing_one_is_named(tmp_path):
    key = tmp_path / "key.txt"
    key.write_text("AGE-SECRET-KEY-1ABC\n")
    identity = age.Identity({"identity": "", "identity_file": str(key)})
    assert identity.path() == str(key)
    identity.cleanup()
    assert key.exists()  # never the operator's own file
    missing = age.Identity({"identity_file": str(tmp_path / "nope.txt")})
    with pytest.raises(
        BackupError, match=r"age identity file .*nope.txt is missing or not readable"
    ):
        missing.path()
    none = age.Identity({})
    assert not none.given()
    assert none.path() is None


def test_decrypting_without_a_key_says_how_to_give_it(tmp_path):
    with pytest.raises(BackupError) as refused:
        age.Identity({}).decrypt_to(str(tmp_path / "shop_1.dump.age"), None, {})
    assert str(refused.value) == (
        "backup shop_1.dump.age is encrypted (age): give its private key with "
        "pg_backup_encryption_identity or pg_backup_encryption_identity_file"
    )


@needs_age
def test_the_right_key_decrypts_into_the_consumer(tmp_path):
    _, text, recipient = age_key(tmp_path)
    data = os.urandom(100 * 1024)
    archive = age_encrypt(data, tmp_path / "shop.dump.age", recipient)
    into = tmp_path / "restored"
    identity = age.Identity({"identity": text})
    try:
        problem = identity.decrypt_to(str(archive), sh(f"cat > {into}"), dict(os.environ))
    finally:
        identity.cleanup()
    assert problem == ""
    assert into.read_bytes() == data


@needs_age
def test_a_consumer_failing_is_the_problem_returned(tmp_path):
    key, _, recipient = age_key(tmp_path)
    archive = age_encrypt(b"garbage", tmp_path / "shop.dump.age", recipient)
    consumer = sh("cat >/dev/null; echo 'pg_restore: error: bad input' >&2; exit 1")
    problem = age.Identity({"identity_file": str(key)}).decrypt_to(str(archive), consumer, {})
    assert problem == "pg_restore: error: bad input\n"
    failed_silently = sh("cat >/dev/null; exit 1")
    assert (
        age.Identity({"identity_file": str(key)}).decrypt_to(str(archive), failed_silently, {})
        == "failed"
    )


@needs_age
def test_globals_decrypted_without_a_consumer_need_their_marker(tmp_path):
    key, _, recipient = age_key(tmp_path)
    identity = age.Identity({"identity_file": str(key)})
    whole = age_encrypt(GLOBALS_SQL, tmp_path / "g.sql.age", recipient)
    assert identity.decrypt_to(str(whole), None, {}) == ""
    cut = age_encrypt(GLOBALS_SQL[:30], tmp_path / "cut.sql.age", recipient)
    assert identity.decrypt_to(str(cut), None, {}) == "incomplete (no end-of-dump marker)"


@needs_age
def test_a_wrong_key_raises_naming_the_backup(tmp_path):
    _, _, recipient = age_key(tmp_path, "right")
    wrong, _, _ = age_key(tmp_path, "wrong")
    archive = age_encrypt(b"PGDMP", tmp_path / "shop_1.dump.age", recipient)
    with pytest.raises(BackupError) as refused:
        age.Identity({"identity_file": str(wrong)}).decrypt_to(str(archive), None, {})
    assert str(refused.value).startswith(
        "cannot decrypt backup shop_1.dump.age: no identity matched"
    )


@needs_age
def test_an_unusable_key_is_named_without_its_path(tmp_path):
    _, _, recipient = age_key(tmp_path)
    archive = age_encrypt(b"PGDMP", tmp_path / "shop_1.dump.age", recipient)
    identity = age.Identity({"identity": "not a key at all"})
    try:
        with pytest.raises(BackupError) as refused:
            identity.decrypt_to(str(archive), None, {})
        secret_path = identity.path()
    finally:
        identity.cleanup()
    message = str(refused.value)
    assert message.startswith("cannot decrypt backup shop_1.dump.age: unusable identity (")
    assert secret_path not in message


@needs_age
def test_a_damaged_archive_with_the_right_key_is_a_problem_not_an_error(tmp_path):
    key, _, recipient = age_key(tmp_path)
    archive = age_encrypt(os.urandom(1000), tmp_path / "shop_1.dump.age", recipient)
    data = bytearray(archive.read_bytes())
    data[-50] ^= 0xFF  # one byte of the payload flipped: its tag no longer matches
    archive.write_bytes(bytes(data))
    problem = age.Identity({"identity_file": str(key)}).decrypt_to(
        str(archive), sh("cat >/dev/null"), {}
    )
    assert problem.startswith("cannot decrypt (")


def test_decrypt_outcome_without_processes():
    """decrypt_outcome's rules on their own (the cases above run them through age)."""
    ok = [0, 0]
    assert age.decrypt_outcome("n", ok, ["", ""], ["pg_restore"], b"") == ""
    assert age.decrypt_outcome("n", [1], ["age: error: header MAC mismatch"], None, b"") == (
        "cannot decrypt (header MAC mismatch)"
    )
    with pytest.raises(BackupError, match=r"^cannot decrypt backup n: unusable identity \(bad\)$"):
        age.decrypt_outcome("n", [1], ['age: error: reading "/k": bad'], None, b"")
