"""PostgreSQL's client programs as the pg_backup modules run them on the database host
(pg_dump, pg_dumpall, pg_restore): their paths, their environment, one line out of their
errors, and what a new archive that failed verification on a full disk really means."""

from __future__ import annotations

import os
import subprocess

from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import BackupError
from ansible_collections.opsplay.ops.plugins.module_utils.postgres import libpq_env

GLOBALS_TRAILER = b"PostgreSQL database cluster dump complete"

# A new archive that fails verification on a filesystem with less than this free was cut short by
# the full disk (pg_dumpall, for one, exits 0 when its writes fail).
FULL_MARGIN = 1 << 20


COMPRESS_METHODS = ("gzip", "lz4", "zstd")
# pg_dump's first major version compressing with lz4 and zstd.
NEW_METHODS = 16


def pg_dump_version(pg_dump):
    """(major, "15.14") of pg_dump (`pg_dump --version`: "pg_dump (PostgreSQL) 15.14 (...)")."""
    try:
        out = subprocess.run(
            [pg_dump, "--version"], stdout=subprocess.PIPE, universal_newlines=True, check=True
        ).stdout
        version = out.split(")", 1)[1].split()[0]
        return int(version.split(".")[0]), version
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError) as exc:
        raise BackupError("cannot tell the version of %s: %s" % (pg_dump, exc)) from exc


def compress_option(params, pg_dump, version=pg_dump_version):
    """pg_dump's --compress value ('' for pg_dump's own default) from the module's compress
    (pg_dump's syntax, when given, wins), compress_method and compress_level (-1: the method's
    default, 0: none). lz4 and zstd are refused before anything is written by a pg_dump older
    than 16, which knows only gzip."""
    if params["compress"]:
        return params["compress"]
    method, level = params["compress_method"], params["compress_level"]
    if level > 9 or level < -1:
        raise BackupError(
            "backup refused: compress level %d is not in 0..9; nothing written" % level
        )
    if method != "gzip":
        major, text = version(pg_dump)
        if major < NEW_METHODS:
            raise BackupError(
                "backup refused: compression %s needs pg_dump %d or later, this host's pg_dump "
                "is %s (use pg_backup_compress_method gzip); nothing written"
                % (method, NEW_METHODS, text)
            )
    if level == 0:
        return "0"
    if method == "gzip":
        return "" if level < 0 else str(level)
    return method if level < 0 else "%s:%d" % (method, level)


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


VERIFICATION_FAILED = "the new archive failed verification: "


def full_disk_explained(function, *args, folder):
    """function(*args); a failed verification of a new archive on a full disk says the disk is
    full (the reader's own message names only the damage)."""
    try:
        return function(*args)
    except BackupError as exc:
        problem = str(exc)
        full = problem.startswith(VERIFICATION_FAILED) and disk_full_problem(
            folder, free_bytes(folder), problem[len(VERIFICATION_FAILED) :]
        )
        if full:
            raise BackupError(full) from exc
        raise


def describe_tool_error(tool, stderr, where):
    """One clear line out of pg_dump / pg_restore's stderr."""
    text = stderr.strip()
    if "No space left on device" in text:
        return "disk full (No space left on device) in %s" % where
    if "statement timeout" in text and "LOCK TABLE " in text:
        # pg_dump --lock-wait-timeout: its LOCK TABLE ... IN ACCESS SHARE MODE timed out
        table = text.split("LOCK TABLE ", 1)[1].split()[0]
        return "lock wait timeout: table %s is locked by another session" % table
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


def unreadable(stderr):
    """The problem of an archive pg_restore could not read, from its stderr."""
    lines = (stderr or "failed").strip().splitlines()
    return "unreadable archive (%s)" % lines[0].split("error: ", 1)[-1]


class Tools:
    """pg_dump, pg_dumpall and pg_restore with the module's bin_dir and login options."""

    def __init__(self, params):
        self.p = params

    def tool(self, name):
        return os.path.join(self.p["bin_dir"], name) if self.p["bin_dir"] else name

    def env(self):
        return libpq_env(self.p)

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

    def restore_check(self, path):
        """Read the whole plain archive with pg_restore to /dev/null: '' or the problem."""
        proc = subprocess.run(
            [self.tool("pg_restore"), "--file", os.devnull, path],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            check=False,
        )
        return unreadable(proc.stderr) if proc.returncode != 0 else ""
