#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module of the pg_backup role: dump, verify, list, prune and annotate PostgreSQL backups.

Layout under ``backup_dir`` (0700, files 0600, owned by the OS user this runs as):

    DB/DB_20261124T031500Z.dump          archive (custom format), or DB_....dir/ (directory format)
    DB/DB_20261124T031500Z.dump.sha256   sha256sum(1) format, relative to DB/
    DB/DB_20261124T031500Z.dump.json     manifest
    _globals/_globals_....sql            pg_dumpall --globals-only (+ .sha256, .json)

A dump is written under a hidden temporary name (``.NAME.tmp``), verified (pg_restore of the whole
archive to /dev/null), checksummed, described by its manifest, and only then renamed to its final
name; any failure removes the temporary files and leaves every earlier backup alone.

With ``encryption: age`` (custom format and globals only) pg_dump's output is streamed through
``age --encrypt`` into the temporary file while pg_restore reads the same bytes to /dev/null, so the
plaintext is verified whole and never touches the disk; the archive is ``NAME.dump.age``. Without
the private key an existing encrypted archive can only be checked by its checksum and its age
structure; with an identity it is decrypted and read whole again.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup_archive
short_description: Dump, verify, list, prune and annotate PostgreSQL backups (opsplay pg_backup)
description:
  - Internal module of the opsplay pg_backup role; see the role's README and
    meta/argument_specs.yml.
  - Runs on the database host as the PostgreSQL OS user (become), connects with psycopg2.
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [backup, verify, list, retention, record, restore, offsite_plan, offsite_receive]
  backup_dir:
    description: Directory holding one sub-directory of backups per database.
    type: path
    required: true
  databases:
    description: Databases to back up (backup) or to consider (other actions); empty means all.
    type: list
    elements: str
    default: []
  globals:
    description: Also dump roles and tablespaces (pg_dumpall --globals-only).
    type: bool
    default: true
  format:
    description: pg_dump archive format.
    type: str
    default: custom
    choices: [custom, directory]
  jobs:
    description: Parallel pg_dump jobs (directory format only).
    type: int
    default: 1
  compress:
    description: Value of pg_dump --compress; empty for pg_dump's default.
    type: str
    default: ""
  lock_wait_timeout:
    description: >-
      Value of pg_dump --lock-wait-timeout, also the lock_timeout of the row-count session.
    type: str
    default: 60s
  row_counts_query:
    description: SQL returning (table, rows); run in the dump's snapshot. Empty to skip counting.
    type: str
    default: ""
  reuse_newer_than:
    description: >-
      Seconds; skip a database whose newest good backup ended more recently. 0 dumps always.
    type: int
    default: 0
  names:
    description: Backups (file names) to verify; empty means every backup.
    type: list
    elements: str
    default: []
  keep_last:
    description: Retention, the N newest verified backups (at least the newest is always kept).
    type: int
    default: 1
  keep_daily:
    description: Retention, newest backup of each of the last N days that have backups.
    type: int
    default: 7
  keep_weekly:
    description: Retention, newest backup of each of the last N ISO weeks that have backups.
    type: int
    default: 4
  keep_monthly:
    description: Retention, newest backup of each of the last N months that have backups.
    type: int
    default: 6
  recheck:
    description:
      - What action=list checks on disk before it calls a backup good (opsplay backups).
      - none - the recorded verification only (the role's own runs verify what they use).
      - size (cheap, a stat per file) - also the archive exists and its size is the manifest's.
      - checksums - also every file against its .sha256 (reads every archive).
    type: str
    default: none
    choices: [none, size, checksums]
  not_good:
    description: Backups (names) retention must not count as good (failed this run's verification).
    type: list
    elements: str
    default: []
  name:
    description: Backup annotated by action=record, or restored by action=restore.
    type: str
  dbname:
    description: Database restored into by action=restore (it must exist).
    type: str
  encryption:
    description: Encrypt new backups with age (custom format and globals only).
    type: str
    default: none
    choices: [none, age]
  recipients:
    description: age recipients (public keys) of new encrypted backups.
    type: list
    elements: str
    default: []
  identity:
    description:
      - age identity (private key text) that decrypts encrypted backups.
      - Written only to a 0600 temporary file, removed before the module returns.
    type: str
    default: ""
  identity_file:
    description: Path of an age identity file on the host; used when identity is empty.
    type: str
    default: ""
  result:
    description: Restore test result recorded by action=record (ok, message, duration, database).
    type: dict
  bin_dir:
    description: Directory of pg_dump, pg_dumpall and pg_restore; empty to use PATH.
    type: str
    default: ""
  login_host:
    description: Server host; empty to use login_unix_socket.
    type: str
    default: ""
  login_unix_socket:
    description: Directory of the server's unix socket.
    type: str
    default: /var/run/postgresql
  login_port:
    description: Server port.
    type: int
    default: 5432
  login_user:
    description: Role to connect as.
    type: str
    default: postgres
  login_password:
    description: Password, if any.
    type: str
    default: ""
  maintenance_db:
    description: Database used to list the others.
    type: str
    default: postgres
  copies:
    description:
      - Off-host copies (offsite_plan, offsite_receive, run on the backup host with backup_dir
        DIR/<db host>). Verified local backups (name, database, sha256, started, size_bytes)
        whose checksum each copy must match.
    type: list
    elements: dict
    default: []
  incoming:
    description: Directory under backup_dir the copies arrive in (offsite_receive).
    type: str
    default: .incoming
author: opsplay
"""

import contextlib
import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import backup_manifest
from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import (
    GLOBALS,
    archive_files,
    archive_size,
    checksum_problem,
    is_good,
    on_disk_problem,
    sha256_file,
)
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import (
    iso,
    now,
    parse_iso,
    stamp,
)

EXTENSIONS = {"custom": ".dump", "directory": ".dir", "sql": ".sql"}
GLOBALS_TRAILER = b"PostgreSQL database cluster dump complete"
AGE = "age"
AGE_MAGIC = b"age-encryption.org/v1\n"
AGE_CHUNK = 64 * 1024 + 16  # STREAM chunk: 64 KiB of plaintext + 16-byte tag


class BackupError(Exception):
    """A failure reported to the user as one line."""


def describe_os_error(exc, what):
    if exc.errno == errno.ENOSPC:
        return "disk full (%s) while writing %s" % (exc.strerror, what)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: %s" % (exc.filename or what)
    return "%s: %s" % (what, exc.strerror or exc)


# A new archive that fails verification on a filesystem with less than this free was cut short by
# the full disk (pg_dumpall, for one, exits 0 when its writes fail).
FULL_MARGIN = 1 << 20


def free_bytes(path):
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def disk_full_problem(folder, free, problem):
    """The real cause of a new archive failing verification when the disk is full, else ''."""
    if free >= FULL_MARGIN:
        return ""
    return "disk full on %s (%d bytes free); the new archive was cut short: %s" % (
        folder,
        free,
        problem,
    )


def describe_tool_error(tool, stderr, where):
    """One clear line out of pg_dump / pg_restore's stderr."""
    text = stderr.strip()
    if "No space left on device" in text:
        return "disk full (No space left on device) in %s" % where
    if "could not obtain lock" in text or "lock timeout" in text:
        locks = [line for line in text.splitlines() if "lock" in line]
        return "lock wait timeout: %s" % (locks[0].split("error: ", 1)[-1] if locks else text)
    if "Permission denied" in text:
        return (
            "permission denied: %s"
            % next(line for line in text.splitlines() if "Permission denied" in line).split(
                "error: ", 1
            )[-1]
        )
    errors = (
        [line for line in text.splitlines() if "error:" in line or "ERROR:" in line]
        or text.splitlines()
        or ["failed"]
    )
    return "%s: %s" % (tool, errors[0].split("error: ", 1)[-1].strip())


def age_message(stderr):
    """age's error line without its prefix and its 'report unexpected errors' footer."""
    lines = [
        line.strip()
        for line in (stderr or "").splitlines()
        if line.strip() and "report unexpected" not in line
    ]
    first = lines[0] if lines else "failed"
    first = first.split("age: error: ", 1)[-1]
    if "no space left on device" in first.lower():
        return "disk full (No space left on device)"
    return first


def identity_problem(message):
    """True when age failed because of the identity (wrong or unusable key), not the archive."""
    return "no identity matched" in message or message.startswith('reading "')


def age_structure(path):
    """'' when path looks like a complete age file (header, MAC, nonce, whole chunks), else why not.

    Without the private key this is all that can be checked: the payload is authenticated only by
    decrypting it.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if handle.read(len(AGE_MAGIC)) != AGE_MAGIC:
            return "not an age file (no age-encryption.org/v1 header)"
        stanzas = 0
        while True:
            line = handle.readline(4096)
            if not line.endswith(b"\n"):
                return "incomplete age header"
            if line.startswith(b"-> "):
                stanzas += 1
            elif line.startswith(b"--- "):
                break
        header = handle.tell()
    if stanzas == 0:
        return "age header without recipients"
    payload = size - header - 16  # the 16-byte nonce, then the chunks
    last = payload % AGE_CHUNK
    if payload < 17 or 0 < last <= 16:
        return "incomplete age payload (truncated?)"
    return ""


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checksum_lines(archive, final_name):
    """sha256sum(1) lines for the archive, named as they will be once renamed to final_name."""
    lines = []
    for path in archive_files(archive):
        rel = final_name if path == archive else os.path.join(final_name, os.path.basename(path))
        lines.append("%s  %s\n" % (sha256_file(path), rel))
    return "".join(lines)


def write_file(path, text):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


class Backups:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.root = self.p["backup_dir"]
        self.changed = False
        self._identity = None  # path of the identity (a temporary 0600 file for identity text)
        self._identity_tmp = None

    # -- age ----------------------------------------------------------------------------------
    def identity_path(self):
        """Path of the age identity, or None. Identity text goes to a 0600 temporary file that
        cleanup() removes before the module returns."""
        if self._identity is None:
            if self.p["identity"]:
                # In RAM (tmpfs) when the host has it, so the key never reaches a disk.
                shm = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
                fd, path = tempfile.mkstemp(prefix="opsplay-age-identity-", dir=shm)
                self._identity_tmp = path
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(self.p["identity"].strip() + "\n")
                self._identity = path
            elif self.p["identity_file"]:
                if not os.access(self.p["identity_file"], os.R_OK):
                    raise BackupError(
                        "age identity file %s is missing or not readable by %s"
                        % (self.p["identity_file"], os.environ.get("USER") or os.getuid())
                    )
                self._identity = self.p["identity_file"]
        return self._identity

    def cleanup(self):
        if self._identity_tmp:
            remove(self._identity_tmp)
            self._identity_tmp = None

    def check_recipients(self):
        """Refuse unusable encryption settings before anything is written."""
        if self.p["encryption"] != "age":
            return
        if self.p["format"] != "custom":
            raise BackupError(
                "backup refused: encryption age needs pg_backup_format custom "
                "(a directory-format archive is many files); nothing written"
            )
        if not self.p["recipients"]:
            raise BackupError(
                "backup refused: encryption age needs at least one recipient "
                "(pg_backup_encryption_recipients); nothing written"
            )
        if not shutil.which(AGE):
            if self.module.check_mode:
                self.module.warn("age is not installed yet: recipients not checked")
                return
            raise BackupError(
                "backup refused: age is not installed on the host (apt install age); "
                "nothing written"
            )
        for recipient in self.p["recipients"]:
            proc = subprocess.run(
                [AGE, "--encrypt", "--recipient", recipient, "--output", os.devnull],
                input=b"",
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
            if proc.returncode != 0:
                raise BackupError(
                    "backup refused: unusable age recipient %r: %s; nothing written"
                    % (recipient, age_message(proc.stderr.decode("utf-8", "replace")))
                )

    @staticmethod
    @contextlib.contextmanager
    def pipeline(count):
        """Stderr files for ``count`` processes and the list the caller appends its processes
        to; on the way out, whatever still runs is killed and the files are closed."""
        errors = [tempfile.TemporaryFile() for _ in range(count)]  # noqa: SIM115 (closed on the way out)
        procs = []
        try:
            yield procs, errors
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            for handle in errors:
                handle.close()

    @staticmethod
    def outcome(procs, errors):
        """Wait for the processes of a pipeline: their exit codes and stderr texts."""
        codes = [p.wait() for p in procs]
        texts = []
        for handle in errors:
            handle.seek(0)
            texts.append(handle.read().decode("utf-8", "replace"))
        return codes, texts

    def encrypt_stream(self, producer, out_path, check, where):
        """Run producer (argv), encrypting its output with age into out_path. What is encrypted is
        read whole on the way: by pg_restore to /dev/null (check='archive') or for the end-of-dump
        marker (check='sql'). The plaintext never touches the disk."""
        argv = [AGE, "--encrypt", "--output", out_path]
        for recipient in self.p["recipients"]:
            argv += ["--recipient", recipient]
        with self.pipeline(3) as (procs, errors):
            dump = subprocess.Popen(
                producer, env=self.env(), stdout=subprocess.PIPE, stderr=errors[0]
            )
            procs.append(dump)
            encrypt = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors[1]
            )
            procs.append(encrypt)
            reader = None
            if check == "archive":
                reader = subprocess.Popen(
                    [self.tool("pg_restore"), "--file", os.devnull],
                    env=self.env(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=errors[2],
                )
                procs.append(reader)
            sinks = [p.stdin for p in procs[1:]]
            broken = set()
            tail = b""
            for block in iter(lambda: dump.stdout.read(1 << 20), b""):
                for sink in sinks:
                    if sink in broken:
                        continue
                    try:
                        sink.write(block)
                    except BrokenPipeError:
                        broken.add(sink)
                tail = (tail + block)[-400:]
            for sink in sinks:
                with contextlib.suppress(BrokenPipeError):
                    sink.close()
            codes, texts = self.outcome(procs, errors)
        if codes[0] != 0:
            raise BackupError(
                describe_tool_error(os.path.basename(producer[0]), texts[0] or "failed", where)
            )
        if codes[1] != 0:
            raise BackupError("age: %s in %s" % (age_message(texts[1]), where))
        if reader is not None and codes[2] != 0:
            lines = (texts[2] or "failed").strip().splitlines()
            raise BackupError(
                "the new archive failed verification: unreadable archive (%s)"
                % lines[0].split("error: ", 1)[-1]
            )
        if check == "sql" and GLOBALS_TRAILER not in tail:
            raise BackupError(
                "the new archive failed verification: incomplete (no end-of-dump marker)"
            )

    def decrypt_to(self, path, consumer):
        """Decrypt path with the identity into consumer (argv reading stdin), or into a check of
        the globals' end-of-dump marker when consumer is None. Returns the consumer's problem or
        ''; raises when the identity cannot open the archive. An archive that fails to decrypt
        with the right key is a problem ('cannot decrypt (...)')."""
        name = os.path.basename(path)
        identity = self.identity_path()
        if identity is None:
            raise BackupError(
                "backup %s is encrypted (age): give its private key with "
                "pg_backup_encryption_identity or pg_backup_encryption_identity_file" % name
            )
        tail = b""
        with self.pipeline(2) as (procs, errors):
            decrypt = subprocess.Popen(
                [AGE, "--decrypt", "--identity", identity, path],
                stdout=subprocess.PIPE,
                stderr=errors[0],
            )
            procs.append(decrypt)
            if consumer:
                procs.append(
                    subprocess.Popen(
                        consumer,
                        env=self.env(),
                        stdin=decrypt.stdout,
                        stdout=subprocess.DEVNULL,
                        stderr=errors[1],
                    )
                )
                decrypt.stdout.close()
            else:
                for block in iter(lambda: decrypt.stdout.read(1 << 20), b""):
                    tail = (tail + block)[-400:]
                decrypt.stdout.close()
            codes, texts = self.outcome(procs, errors)
        if codes[0] != 0:
            message = age_message(texts[0])
            if identity_problem(message):
                if message.startswith('reading "'):
                    message = "unusable identity (%s)" % message.rsplit(": ", 1)[-1]
                raise BackupError("cannot decrypt backup %s: %s" % (name, message))
            return "cannot decrypt (%s)" % message
        if consumer and codes[1] != 0:
            return texts[1] or "failed"
        if not consumer and GLOBALS_TRAILER not in tail:
            return "incomplete (no end-of-dump marker)"
        return ""

    # -- connections and tools ---------------------------------------------------------------
    def tool(self, name):
        return os.path.join(self.p["bin_dir"], name) if self.p["bin_dir"] else name

    def env(self):
        env = dict(os.environ)
        env["PGHOST"] = self.p["login_host"] or self.p["login_unix_socket"]
        env["PGPORT"] = str(self.p["login_port"])
        env["PGUSER"] = self.p["login_user"]
        if self.p["login_password"]:
            env["PGPASSWORD"] = self.p["login_password"]
        return env

    def connect(self, dbname):
        try:
            import psycopg2
        except ImportError:
            raise BackupError("python3-psycopg2 is missing on the host") from None
        where = "%s:%s" % (
            self.p["login_host"] or self.p["login_unix_socket"],
            self.p["login_port"],
        )
        try:
            return psycopg2.connect(
                dbname=dbname,
                host=self.p["login_host"] or self.p["login_unix_socket"],
                port=self.p["login_port"],
                user=self.p["login_user"],
                password=self.p["login_password"] or None,
                connect_timeout=10,
                application_name="opsplay pg_backup",
            )
        except psycopg2.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["unknown error"])[0]
            if "does not exist" in first and dbname in first:
                raise BackupError("database %s does not exist" % dbname) from exc
            raise BackupError("PostgreSQL server not reachable at %s: %s" % (where, first)) from exc

    def run(self, argv, where):
        proc = subprocess.run(
            argv,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BackupError(
                describe_tool_error(os.path.basename(argv[0]), proc.stderr or proc.stdout, where)
            )
        return proc

    # -- reading what is on disk --------------------------------------------------------------
    def db_dir(self, database):
        return os.path.join(self.root, database)

    def manifests(self, databases=None):
        """Every backup (manifest + archive) under backup_dir, oldest first (module_utils)."""
        try:
            return backup_manifest.manifests(self.root, databases)
        except OSError as exc:
            raise BackupError(describe_os_error(exc, exc.filename or self.root)) from exc

    is_good = staticmethod(is_good)

    def save_manifest(self, manifest):
        data = {k: v for k, v in manifest.items() if k not in ("manifest_path", "path")}
        tmp = os.path.join(
            os.path.dirname(manifest["manifest_path"]),
            "." + os.path.basename(manifest["manifest_path"]) + ".tmp",
        )
        try:
            write_file(tmp, json.dumps(data, indent=2, sort_keys=True) + "\n")
            os.rename(tmp, manifest["manifest_path"])
        except OSError as exc:
            remove(tmp)
            raise BackupError(describe_os_error(exc, manifest["manifest_path"])) from exc

    # -- verification -------------------------------------------------------------------------
    def check_archive(self, manifest):
        """'' when the archive is complete and matches its checksum, else the problem."""
        if "unreadable" in manifest:
            return "manifest unreadable (%s)" % manifest["unreadable"]
        path = manifest["path"]
        if not os.path.exists(path):
            return "archive missing"
        return checksum_problem(path) or self.readable(
            path, manifest.get("format"), manifest.get("encryption")
        )

    def readable(self, path, fmt, encryption=None):
        """Read the whole archive: '' when it is complete, else the problem."""
        if encryption == "age":
            problem = age_structure(path)
            if problem or not (self.p["identity"] or self.p["identity_file"]):
                return problem  # without the key: checksum and structure only
            problem = self.decrypt_to(
                path, None if fmt == "sql" else [self.tool("pg_restore"), "--file", os.devnull]
            )
            if problem and not problem.startswith("cannot decrypt"):
                lines = problem.strip().splitlines()
                return "unreadable archive (%s)" % lines[0].split("error: ", 1)[-1]
            return problem
        if fmt == "sql":
            with open(path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(path) - 200))
                tail = handle.read()
            return "" if GLOBALS_TRAILER in tail else "incomplete (no end-of-dump marker)"
        proc = subprocess.run(
            [self.tool("pg_restore"), "--file", os.devnull, path],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            check=False,
        )
        if proc.returncode != 0:
            lines = (proc.stderr or "failed").strip().splitlines()
            return "unreadable archive (%s)" % lines[0].split("error: ", 1)[-1]
        return ""

    def verify(self):
        wanted = set(self.p["names"])
        results = []
        for manifest in self.manifests(self.p["databases"]):
            if wanted and manifest["name"] not in wanted:
                continue
            problem = self.check_archive(manifest)
            ok = not problem
            results.append(
                {
                    "name": manifest["name"],
                    "database": manifest.get("database"),
                    "ok": ok,
                    "problem": problem,
                }
            )
            recorded = manifest.get("verified", {})
            if "unreadable" not in manifest and (
                recorded.get("ok") is not ok or recorded.get("problem", "") != problem
            ):
                self.changed = True
                if not self.module.check_mode:
                    manifest["verified"] = {"ok": ok, "at": iso(now()), "problem": problem}
                    self.save_manifest(manifest)
        missing = wanted - {r["name"] for r in results}
        for name in sorted(missing):
            results.append(
                {"name": name, "database": None, "ok": False, "problem": "no such backup"}
            )
        bad = [r for r in results if not r["ok"]]
        return {
            "verified": results,
            "bad": bad,
            "msg": "; ".join("backup %s is bad: %s" % (r["name"], r["problem"]) for r in bad)
            or "%d backups verified" % len(results),
        }

    # -- backup -------------------------------------------------------------------------------
    def server(self):
        conn = self.connect(self.p["maintenance_db"])
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                version = cur.fetchone()[0]
                cur.execute(
                    "SELECT datname FROM pg_database"
                    " WHERE NOT datistemplate AND datallowconn ORDER BY 1"
                )
                databases = [row[0] for row in cur.fetchall()]
        finally:
            conn.close()
        return version, databases

    def prepare_dir(self, path):
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            probe = os.path.join(path, ".write-test.tmp")
            with open(probe, "w", encoding="utf-8"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise BackupError(describe_os_error(exc, path)) from exc

    def clean_leftovers(self, folder, database):
        """What an interrupted earlier run left in ``folder``: temporary files, and an archive
        or checksum file of this database's naming whose manifest never got its final name
        (the manifest is written last and deleted first, so such parts are never a backup)."""
        parts = re.compile(
            r"^%s_\d{8}T\d{6}Z(%s)(\.age)?(\.sha256)?$"
            % (re.escape(database), "|".join(re.escape(e) for e in EXTENSIONS.values()))
        )
        entries = os.listdir(folder)
        removed = []
        for entry in sorted(entries):
            if entry.startswith(".") and entry.endswith(".tmp"):
                removed.append(entry)
            elif parts.match(entry):
                archive = entry[: -len(".sha256")] if entry.endswith(".sha256") else entry
                if archive + ".json" not in entries:
                    removed.append(entry)
        if not self.module.check_mode:
            for entry in removed:
                remove(os.path.join(folder, entry))
        return removed

    def fresh(self, database):
        limit = self.p["reuse_newer_than"]
        if limit <= 0:
            return None
        good = [
            m
            for m in self.manifests([database])
            if m.get("database") == database
            and self.is_good(m)
            # Only a backup made as now configured (encryption and its recipients) is reused.
            and m.get("encryption", "none") == self.p["encryption"]
            and m.get("recipients", [])
            == (self.p["recipients"] if self.p["encryption"] != "none" else [])
        ]
        if good and (now() - parse_iso(good[-1]["ended"])).total_seconds() < limit:
            return good[-1]["name"]
        return None

    def backup(self):
        self.check_recipients()
        version, existing = self.server()
        wanted = self.p["databases"] or existing
        missing = [d for d in wanted if d not in existing]
        if missing:
            raise BackupError(
                "database%s %s do%s not exist"
                % (
                    "s" if len(missing) > 1 else "",
                    ", ".join(missing),
                    "" if len(missing) > 1 else "es",
                )
            )
        bad_names = [d for d in wanted if "/" in d or d.startswith(".") or d == GLOBALS]
        if bad_names:
            raise BackupError(
                "database names unusable as directory names: %s" % ", ".join(bad_names)
            )
        todo = ([GLOBALS] if self.p["globals"] else []) + list(wanted)
        if not self.module.check_mode:
            self.prepare_dir(self.root)
        done, skipped, leftovers = [], [], []
        for database in todo:
            folder = self.db_dir(database)
            if os.path.isdir(folder):
                leftovers += [
                    os.path.join(database, f) for f in self.clean_leftovers(folder, database)
                ]
            reuse = self.fresh(database)
            if reuse:
                skipped.append({"database": database, "name": reuse})
                continue
            self.changed = True
            if self.module.check_mode:
                done.append({"database": database, "name": None})
                continue
            self.prepare_dir(folder)
            try:
                done.append(self.dump(database, folder, version))
            except BackupError as exc:
                raise BackupError(
                    "backup of %s failed: %s; no backup written, earlier backups untouched%s"
                    % (
                        "globals" if database == GLOBALS else "database " + database,
                        exc,
                        ""
                        if not done
                        else " (completed before the failure: %s)"
                        % ", ".join(d["name"] for d in done),
                    )
                ) from exc
        if leftovers:
            self.changed = True
        return {
            "backups": done,
            "reused": skipped,
            "leftovers_removed": leftovers,
            "server_version": version,
            "msg": "backed up: %s; reused fresh backups: %s"
            % (
                ", ".join(d["name"] or d["database"] for d in done) or "none",
                ", ".join(s["name"] for s in skipped) or "none",
            ),
        }

    def new_name(self, database, folder, ext):
        while True:
            started = now().replace(microsecond=0)
            name = "%s_%s%s" % (database, stamp(started), ext)
            taken = (name, name + ".json", "." + name + ".tmp")  # .tmp: a dump under way
            if not any(os.path.exists(os.path.join(folder, t)) for t in taken):
                return name, started
            time.sleep(0.5)

    def dump(self, database, folder, version):
        fmt = "sql" if database == GLOBALS else self.p["format"]
        encrypted = self.p["encryption"] == "age"
        name, started = self.new_name(
            database, folder, EXTENSIONS[fmt] + (".age" if encrypted else "")
        )
        final = os.path.join(folder, name)
        tmp = {
            key: os.path.join(folder, ".%s%s.tmp" % (name, suffix))
            for key, suffix in (("archive", ""), ("sha256", ".sha256"), ("json", ".json"))
        }
        clock = time.monotonic()
        conn = None
        try:
            counts = None
            if fmt == "sql" and encrypted:
                self.encrypt_stream(
                    [self.tool("pg_dumpall"), "--globals-only"], tmp["archive"], "sql", folder
                )
            elif fmt == "sql":
                self.run(
                    [self.tool("pg_dumpall"), "--globals-only", "--file", tmp["archive"]], folder
                )
            else:
                argv = [
                    self.tool("pg_dump"),
                    "--format",
                    fmt,
                    "--lock-wait-timeout",
                    self.p["lock_wait_timeout"],
                    "--no-password",
                ]
                if self.p["compress"]:
                    argv += ["--compress", self.p["compress"]]
                if fmt == "directory" and self.p["jobs"] > 1:
                    argv += ["--jobs", str(self.p["jobs"])]
                if self.p["row_counts_query"]:
                    conn, snapshot, counts = self.count_rows(database)
                    argv += ["--snapshot", snapshot]
                if encrypted:
                    # The plaintext is read whole by pg_restore on its way into age.
                    self.encrypt_stream(
                        [*argv, "--dbname", database], tmp["archive"], "archive", folder
                    )
                else:
                    self.run([*argv, "--file", tmp["archive"], "--dbname", database], folder)
            if conn is not None:
                conn.rollback()
                conn.close()
                conn = None
            ended = now().replace(microsecond=0)
            problem = (
                age_structure(tmp["archive"]) if encrypted else self.readable(tmp["archive"], fmt)
            )
            if problem:
                raise BackupError(
                    disk_full_problem(folder, free_bytes(folder), problem)
                    or "the new archive failed verification: %s" % problem
                )
            sums = checksum_lines(tmp["archive"], name)
            manifest = {
                "name": name,
                "database": database,
                "format": fmt,
                "compress": self.p["compress"] if fmt != "sql" else "",
                "server_version": version,
                "started": iso(started),
                "ended": iso(ended),
                "duration_seconds": round(time.monotonic() - clock, 3),
                "size_bytes": archive_size(tmp["archive"]),
                "sha256": sums.split()[0]
                if fmt != "directory"
                else hashlib.sha256(sums.encode()).hexdigest(),
                "row_counts": counts,
                "verified": {"ok": True, "at": iso(ended), "problem": ""},
                "restore_test": None,
            }
            if encrypted:
                manifest["encryption"] = "age"
                manifest["recipients"] = list(self.p["recipients"])
            write_file(tmp["sha256"], sums)
            write_file(tmp["json"], json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            for path in archive_files(tmp["archive"]):
                fsync_path(path)
            # The manifest gets its final name last (as an offsite copy's does): a manifest
            # always has its whole archive beside it. A run killed before that leaves only
            # parts without a manifest, which the next backup removes (clean_leftovers).
            os.rename(tmp["sha256"], final + ".sha256")
            os.rename(tmp["archive"], final)
            fsync_path(folder)
            os.rename(tmp["json"], final + ".json")
            fsync_path(folder)
        except OSError as exc:
            self.undo(tmp, final)
            raise BackupError(describe_os_error(exc, folder)) from exc
        except BaseException:
            self.undo(tmp, final)
            raise
        finally:
            if conn is not None:
                conn.close()
        return {
            "database": database,
            "name": name,
            "path": final,
            "size_bytes": manifest["size_bytes"],
            "duration_seconds": manifest["duration_seconds"],
        }

    @staticmethod
    def undo(tmp, final):
        for path in tmp.values():
            remove(path)
        if not os.path.exists(final + ".json"):  # no manifest: not a backup, no part stays
            remove(final + ".sha256")
            remove(final)

    def count_rows(self, database):
        """Open a REPEATABLE READ transaction, export its snapshot for pg_dump, count rows in it."""
        import psycopg2

        conn = self.connect(database)
        try:
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('lock_timeout', %s, true)", (self.p["lock_wait_timeout"],)
                )
                cur.execute("SELECT pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
                cur.execute(self.p["row_counts_query"])
                counts = {row[0]: int(row[1]) for row in cur.fetchall()}
        except psycopg2.Error as exc:
            conn.close()
            first = (str(exc).strip().splitlines() or ["error"])[0]
            if "lock timeout" in first:
                raise BackupError(
                    "lock wait timeout (%s) counting rows: a table is locked"
                    % self.p["lock_wait_timeout"]
                ) from exc
            raise BackupError("counting rows: %s" % first) from exc
        return conn, snapshot, counts

    # -- listing, retention, annotations ------------------------------------------------------
    def listing(self):
        backups = []
        recheck = self.p["recheck"]
        for m in self.manifests(self.p["databases"]):
            problem = on_disk_problem(m, recheck == "checksums") if recheck != "none" else ""
            on_disk = {"ok": not problem, "problem": problem, "checked": recheck}
            backups.append(
                {
                    k: m.get(k)
                    for k in (
                        "name",
                        "database",
                        "path",
                        "format",
                        "started",
                        "ended",
                        "duration_seconds",
                        "size_bytes",
                        "sha256",
                        "server_version",
                        "verified",
                        "restore_test",
                        "row_counts",
                    )
                }
                | {
                    # Recorded as verified and, checked now, still the archive verified.
                    "good": self.is_good(m) and not problem,
                    "on_disk": on_disk,
                    "encryption": m.get("encryption", "none"),
                    "recipients": m.get("recipients", []),
                }
            )
        newest, summary = {}, {}
        for b in backups:
            entry = summary.setdefault(b["database"], {"good": 0, "bad": 0})
            entry["good" if b["good"] else "bad"] += 1
            if b["good"]:
                newest[b["database"]] = b
                entry.update(
                    last_success=int(parse_iso(b["ended"]).timestamp()),
                    size_bytes=b["size_bytes"],
                    duration_seconds=b["duration_seconds"],
                )
            test = b["restore_test"] or {}
            if test.get("at") and test["at"] >= entry.get("restore_test_at", ""):
                entry.update(
                    restore_test_at=test["at"],
                    restore_test_ok=bool(test.get("ok")),
                    restore_test_timestamp=int(parse_iso(test["at"]).timestamp()),
                )
        return {
            "backups": backups,
            "newest_good": newest,
            "summary": summary,
            "msg": "%d backups" % len(backups),
        }

    def gfs(self, items, not_good=()):
        """Grandfather-father-son over manifests: (the ones to delete, {kept name: reasons}).

        Only verified backups count and only they are ever deleted; the newest verified backup
        of each database is always kept. A database without a verified backup loses nothing."""
        by_db = {}
        for m in items:
            by_db.setdefault(m.get("database"), []).append(m)
        delete, keep = [], {}
        for _database, group in sorted(by_db.items(), key=lambda kv: str(kv[0])):
            good = [m for m in group if self.is_good(m) and m["name"] not in not_good]
            if not good:
                continue  # nothing verified to fall back on: delete nothing
            good.sort(key=lambda m: m["started"], reverse=True)
            reasons = {m["name"]: ["last"] for m in good[: max(1, self.p["keep_last"])]}
            rules = (
                ("daily", self.p["keep_daily"], lambda t: t.strftime("%Y-%m-%d")),
                ("weekly", self.p["keep_weekly"], lambda t: "%d-W%02d" % t.isocalendar()[:2]),
                ("monthly", self.p["keep_monthly"], lambda t: t.strftime("%Y-%m")),
            )
            for rule, count, bucket in rules:
                seen = []
                for m in good:
                    key = bucket(parse_iso(m["started"]))
                    if key in seen:
                        continue
                    if len(seen) >= count:
                        break
                    seen.append(key)
                    reasons.setdefault(m["name"], []).append(rule)
            keep.update({name: "+".join(r) for name, r in reasons.items()})
            # Only verified backups are pruned; bad ones stay for inspection (and keep failing
            # verification until someone removes them).
            delete += [m for m in good if m["name"] not in reasons]
        return delete, keep

    def prune(self, delete):
        if delete and not self.module.check_mode:
            for m in delete:
                # manifest first: a run killed in between leaves parts without a manifest
                # (removed by the next backup), never a manifest without its archive
                remove(m["manifest_path"])
                remove(m["path"] + ".sha256")
                remove(m["path"])
        if delete:
            self.changed = True
        return [m["name"] for m in delete]

    def retention(self):
        delete, keep = self.gfs(self.manifests(self.p["databases"]), set(self.p["not_good"]))
        names = self.prune(delete)
        return {
            "deleted": names,
            "kept": keep,
            "msg": ("would delete: " if self.module.check_mode else "deleted: ")
            + (", ".join(names) or "nothing"),
        }

    # -- off-host copies (run on the backup host, backup_dir = DIR/<db host>) -----------------
    def copy_files(self, copy):
        """Paths, relative to backup_dir, of the three parts of a backup: archive, checksum
        file, manifest (the order they get their final names in)."""
        rel = os.path.join(copy["database"], copy["name"])
        return [rel, rel + ".sha256", rel + ".json"]

    def check_copies(self):
        for copy in self.p["copies"]:
            for key in ("name", "database", "sha256", "started"):
                if not copy.get(key):
                    raise BackupError("offsite: backup entry without %s: %r" % (key, copy))
            if "/" in copy["name"] or "/" in copy["database"] or copy["database"].startswith("."):
                raise BackupError("offsite: unusable backup name %s" % copy["name"])

    def offsite_plan(self):
        """Read-only: which of `copies` (verified local backups) the backup host does not hold
        as a checked copy (manifest under its final name) and would keep under its own GFS
        retention, and which held copies that retention would delete once they are in."""
        self.check_copies()
        held = {m["name"]: m for m in self.manifests()}
        wanted = [c for c in self.p["copies"] if c["name"] not in held]
        pending = [
            dict(c, verified={"ok": True}, path="", manifest_path="", pending=True) for c in wanted
        ]
        delete, _ = self.gfs(list(held.values()) + pending)
        gone = {m["name"] for m in delete}
        send = [c for c in wanted if c["name"] not in gone]
        return {
            "held": sorted(held),
            "send": send,
            "send_bytes": sum(int(c.get("size_bytes") or 0) for c in send),
            "files": [f for c in send for f in self.copy_files(c)],
            "would_delete": sorted(m["name"] for m in delete if not m.get("pending")),
            "msg": "%d held, %d to copy" % (len(held), len(send)),
        }

    def offsite_receive(self):
        """Check every copy that arrived in the incoming directory against the checksum the
        database host recorded (archive, checksum file and manifest), give each matching copy
        its final name (archive first, manifest last), drop the others and whatever else is
        left in the incoming directory, then apply this host's retention when all matched."""
        self.check_copies()
        incoming = os.path.join(self.root, self.p["incoming"])
        promoted, bad = [], []
        for copy in self.p["copies"]:
            parts = self.copy_files(copy)
            sources = [os.path.join(incoming, p) for p in parts]
            targets = [os.path.join(self.root, p) for p in parts]
            problem = self.copy_problem(copy, sources)
            if problem:
                bad.append("offsite copy of %s is bad: %s" % (copy["name"], problem))
                for path in sources:
                    if not self.module.check_mode:
                        remove(path)
                continue
            if self.module.check_mode:
                promoted.append(copy)
                continue
            folder = os.path.dirname(targets[0])
            os.makedirs(folder, mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
            for source, target in zip(sources, targets):
                for path in archive_files(source) + ([source] if os.path.isdir(source) else []):
                    os.chmod(path, 0o700 if os.path.isdir(path) else 0o600)
                if os.path.exists(target):
                    remove(target)  # an unchecked part left by an interrupted promotion
                os.rename(source, target)
            fsync_path(folder)
            promoted.append(copy)
        leftovers = []
        if os.path.isdir(incoming):
            for top, _dirs, files in os.walk(incoming):
                leftovers += [os.path.relpath(os.path.join(top, f), incoming) for f in files]
            if not self.module.check_mode:
                remove(incoming)
        self.changed = bool(promoted or leftovers or bad)
        deleted = []
        if not bad:
            delete, _ = self.gfs(self.manifests())
            deleted = self.prune(delete)
        return {
            "promoted": [c["name"] for c in promoted],
            "bytes": sum(int(c.get("size_bytes") or 0) for c in promoted),
            "bad": bad,
            "deleted": deleted,
            "leftovers_removed": leftovers,
            "msg": "; ".join(bad) or "copied %d, pruned %d" % (len(promoted), len(deleted)),
        }

    @staticmethod
    def copy_problem(copy, sources):
        """'' when the incoming archive, checksum file and manifest match the checksum recorded
        on the database host, else what differs."""
        archive, sums_path, manifest_path = sources
        missing = [os.path.basename(p) for p in sources if not os.path.exists(p)]
        if missing:
            return "not received (%s)" % ", ".join(missing)
        sums = checksum_lines(archive, copy["name"])
        digest = (
            hashlib.sha256(sums.encode()).hexdigest() if os.path.isdir(archive) else sums.split()[0]
        )
        if digest != copy["sha256"]:
            return "checksum mismatch (sha256 %s, expected %s)" % (digest, copy["sha256"])
        with open(sums_path, encoding="utf-8", errors="replace") as handle:
            if handle.read() != sums:
                return "checksum file differs from the archive"
        try:
            with open(manifest_path, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except ValueError:
            return "manifest unreadable"
        if manifest.get("name") != copy["name"] or manifest.get("sha256") != copy["sha256"]:
            return "manifest differs from the database host's"
        return ""

    def restore(self):
        """Restore backup `name` into the existing database `dbname`, stopping at the first SQL
        error; an encrypted archive is decrypted on the way (never written in plaintext)."""
        found = [m for m in self.manifests() if m["name"] == self.p["name"]]
        if not found:
            raise BackupError("no backup named %s" % self.p["name"])
        manifest = found[0]
        self.changed = True
        if self.module.check_mode:
            return {"msg": "would restore %s" % manifest["name"], "delta": "0:00:00"}
        clock = time.monotonic()
        argv = [
            self.tool("pg_restore"),
            "--exit-on-error",
            "--no-password",
            "--dbname",
            self.p["dbname"],
        ]
        if manifest.get("encryption") == "age":
            # From a pipe pg_restore runs one job.
            problem = self.decrypt_to(manifest["path"], argv)
            if problem.startswith("cannot decrypt"):
                raise BackupError("backup %s: %s" % (manifest["name"], problem))
            if problem:
                raise BackupError(describe_tool_error("pg_restore", problem, self.p["dbname"]))
        else:
            self.run([*argv, "--jobs", str(self.p["jobs"]), manifest["path"]], self.p["dbname"])
        seconds = time.monotonic() - clock
        return {
            "msg": "restored %s into %s" % (manifest["name"], self.p["dbname"]),
            "duration_seconds": round(seconds, 3),
            "delta": str(datetime.timedelta(seconds=seconds)),
        }

    def record(self):
        for m in self.manifests():
            if m["name"] == self.p["name"]:
                result = dict(self.p["result"] or {})
                result.setdefault("at", iso(now()))
                self.changed = True
                if not self.module.check_mode:
                    m["restore_test"] = result
                    self.save_manifest(m)
                return {"msg": "recorded restore test of %s" % m["name"]}
        raise BackupError("no backup named %s" % self.p["name"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(
                type="str",
                required=True,
                choices=[
                    "backup",
                    "verify",
                    "list",
                    "retention",
                    "record",
                    "restore",
                    "offsite_plan",
                    "offsite_receive",
                ],
            ),
            backup_dir=dict(type="path", required=True),
            databases=dict(type="list", elements="str", default=[]),
            globals=dict(type="bool", default=True),
            format=dict(type="str", default="custom", choices=["custom", "directory"]),
            jobs=dict(type="int", default=1),
            compress=dict(type="str", default=""),
            lock_wait_timeout=dict(type="str", default="60s"),
            row_counts_query=dict(type="str", default=""),
            reuse_newer_than=dict(type="int", default=0),
            names=dict(type="list", elements="str", default=[]),
            keep_last=dict(type="int", default=1),
            keep_daily=dict(type="int", default=7),
            keep_weekly=dict(type="int", default=4),
            keep_monthly=dict(type="int", default=6),
            not_good=dict(type="list", elements="str", default=[]),
            recheck=dict(type="str", default="none", choices=["none", "size", "checksums"]),
            name=dict(type="str"),
            result=dict(type="dict"),
            dbname=dict(type="str"),
            encryption=dict(type="str", default="none", choices=["none", "age"]),
            recipients=dict(type="list", elements="str", default=[]),
            identity=dict(type="str", default="", no_log=True),
            identity_file=dict(type="str", default=""),
            bin_dir=dict(type="str", default=""),
            login_host=dict(type="str", default=""),
            login_unix_socket=dict(type="str", default="/var/run/postgresql"),
            login_port=dict(type="int", default=5432),
            login_user=dict(type="str", default="postgres"),
            login_password=dict(type="str", default="", no_log=True),
            maintenance_db=dict(type="str", default="postgres"),
            copies=dict(type="list", elements="dict", default=[]),
            incoming=dict(type="str", default=".incoming"),
        ),
        supports_check_mode=True,
    )
    os.umask(0o077)  # archives, checksums and manifests 0600, directories 0700
    backups = Backups(module)
    error = None
    try:
        result = getattr(
            backups, {"list": "listing"}.get(module.params["action"], module.params["action"])
        )()
    except BackupError as exc:
        error = str(exc)
    except OSError as exc:
        error = describe_os_error(exc, module.params["backup_dir"])
    finally:
        backups.cleanup()  # the identity's temporary file, whatever happened
    if error is not None:
        module.fail_json(msg=error)
    module.exit_json(changed=backups.changed, **result)


if __name__ == "__main__":
    main()
