"""Shared parts of the pg_backup unit tests (test_pg_backup_*): a module's main() run in-process
the way Ansible's module tests do it, recording stand-ins for PostgreSQL's client programs (the
modules' bin_dir option) and for psycopg2 (imported by the modules inside their functions), real
age keys, and backups on disk as pg_backup_dump leaves them.

There is no PostgreSQL server here: what pg_dump, pg_restore and the server really do is proven by
molecule/pg_backup and molecule/pg_backup_encryption. age is the real program (Debian package
``age``, installed by scripts/setup-host). main() runs through tests/unit/module_harness.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from .module_harness import run_main

needs_age = pytest.mark.skipif(
    shutil.which("age") is None, reason="age is not installed (scripts/setup-host installs it)"
)

# -- a module's main() as Ansible runs it ---------------------------------------------------------


def run(module, args: dict, check_mode: bool = False) -> tuple[int, dict]:
    """module.main() run in-process by tests/unit/module_harness.run_main: (rc, result). The
    process umask is restored (the pg_backup modules set 0077 for the rest of the process)."""
    with umask_kept():
        return run_main(module, args, check_mode=check_mode)


class FakeModule:
    """What the module classes use of AnsibleModule: params, check_mode, warn."""

    def __init__(self, params: dict, check_mode: bool = False):
        self.params = params
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def host_params(root: Path, bin_dir: Path, **overrides) -> dict:
    """The options of a database-host pg_backup module (pg_backup_host.HOST_OPTIONS and more)."""
    params = {
        "backup_dir": str(root),
        "databases": [],
        "bin_dir": str(bin_dir),
        "login_host": "",
        "login_unix_socket": "/run/test-socket",
        "login_port": 5432,
        "login_user": "postgres",
        "login_password": "",
        "identity": "",
        "identity_file": "",
        "maintenance_db": "postgres",
        "globals": True,
        "format": "custom",
        "jobs": 1,
        "compress": "",
        "lock_wait_timeout": "60s",
        "row_counts": False,
        "compress_method": "gzip",
        "compress_level": -1,
        "reuse_newer_than": 0,
        "encryption": "none",
        "recipients": [],
    }
    params.update(overrides)
    return params


# -- PostgreSQL's client programs -----------------------------------------------------------------

# Each stand-in appends its argv (JSON) to NAME.calls beside it, then does what its body says.
# pg_dump / pg_dumpall write their output to --file or stdout, or fail with FAKE_PG_DUMP_ERROR
# (only for the database FAKE_PG_DUMP_FAILING when that is set). pg_restore reads its archive
# argument or stdin whole (into FAKE_PG_RESTORE_INTO when set), fails with FAKE_PG_RESTORE_ERROR,
# and accepts an archive starting with PGDMP and ending with END.
_PRELUDE = """#!%s
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, os.path.basename(__file__) + ".calls"), "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
def option(name):
    return args[args.index(name) + 1] if name in args else None
def output(data):
    out = option("--file")
    if out:
        with open(out, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)
"""

DUMP = """
if args == ["--version"]:
    print("pg_dump (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)")
    sys.exit(0)
if os.environ.get("FAKE_PG_DUMP_ERROR") and os.environ.get("FAKE_PG_DUMP_FAILING", option(
        "--dbname")) == option("--dbname"):
    sys.stderr.write(os.environ["FAKE_PG_DUMP_ERROR"] + "\\n")
    sys.exit(1)
data = b"PGDMP dump of " + (option("--dbname") or "?").encode() + b" END"
if os.environ.get("FAKE_PG_DUMP_KILLED"):  # half of the archive, then SIGKILL
    sys.stdout.buffer.write(data[: len(data) // 2])
    sys.stdout.buffer.flush()
    os.kill(os.getpid(), 9)
if option("--format") == "directory":
    os.mkdir(option("--file"))
    for part in ("toc.dat", "3001.dat.gz"):
        with open(os.path.join(option("--file"), part), "wb") as handle:
            handle.write(data)
else:
    output(data)
"""

DUMPALL = """
if os.environ.get("FAKE_PG_DUMP_ERROR") and os.environ.get(
        "FAKE_PG_DUMP_FAILING", "_globals") == "_globals":
    sys.stderr.write(os.environ["FAKE_PG_DUMP_ERROR"] + "\\n")
    sys.exit(1)
output(b"CREATE ROLE app;\\n--\\n-- PostgreSQL database cluster dump complete\\n--\\n")
"""

RESTORE = """
archive = [a for a in args if not a.startswith("-") and a != os.devnull
           and args[args.index(a) - 1] not in ("--file", "--dbname", "--jobs")]
if archive:
    if os.path.isdir(archive[0]):
        archive[0] = os.path.join(archive[0], "toc.dat")
    with open(archive[0], "rb") as handle:
        data = handle.read()
else:
    data = sys.stdin.buffer.read()
if os.environ.get("FAKE_PG_RESTORE_INTO"):
    with open(os.environ["FAKE_PG_RESTORE_INTO"], "wb") as handle:
        handle.write(data)
if os.environ.get("FAKE_PG_RESTORE_ERROR"):
    sys.stderr.write(os.environ["FAKE_PG_RESTORE_ERROR"] + "\\n")
    sys.exit(1)
if not (data.startswith(b"PGDMP") and data.endswith(b"END")):
    sys.stderr.write("pg_restore: error: input file does not appear to be a valid archive\\n")
    sys.exit(1)
if "--data-only" in args and option("--file") == "-":
    rows = int(os.environ.get("FAKE_ROWS", "42"))
    sys.stdout.buffer.write(b"SET x = 0;\\nCOPY public.orders (id, note) FROM stdin;\\n")
    sys.stdout.buffer.write(b"".join(b"%d\\tline\\\\none\\n" % i for i in range(rows)))
    sys.stdout.buffer.write(os.environ.get("FAKE_COPY_END", "\\\\.\\n").encode())
"""


def fake_tools(bin_dir: Path) -> Path:
    """bin_dir with recording stand-ins for pg_dump, pg_dumpall and pg_restore."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in (("pg_dump", DUMP), ("pg_dumpall", DUMPALL), ("pg_restore", RESTORE)):
        tool = bin_dir / name
        tool.write_text(_PRELUDE % sys.executable + body)
        tool.chmod(0o755)
    return bin_dir


def calls(bin_dir: Path, name: str) -> list[list[str]]:
    """The argv of every run of the stand-in NAME, in order."""
    path = bin_dir / (name + ".calls")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- psycopg2 -------------------------------------------------------------------------------------


class FakeError(Exception):
    def __init__(self, message: str = "", pgcode: str | None = None):
        super().__init__(message)
        self.pgcode = pgcode


class FakeOperationalError(FakeError):
    pass


class FakeCursor:
    def __init__(self, conn: FakeConn):
        self.conn = conn
        self.rows: list = []
        self.description = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, statement, args=()):
        statement = str(statement)
        self.conn.log.append((statement, tuple(args or ())))
        rows = self.conn.server.answer(statement, tuple(args or ()), self.conn)
        self.rows = rows if rows is not None else []
        self.description = [("column",)] if rows is not None else None

    def fetchone(self):
        return self.rows[0]

    def fetchall(self):
        return list(self.rows)


class FakeConn:
    def __init__(self, server: FakeServer, kwargs: dict):
        self.server = server
        self.kwargs = kwargs
        self.log: list = []
        self.autocommit = False
        self.closed = False
        self.session: dict = {}
        self.commits = 0
        self.rollbacks = 0

    def cursor(self):
        return FakeCursor(self)

    def set_session(self, **kwargs):
        self.session = kwargs

    def commit(self):
        self.commits += 1
        self.server.commit(self)

    def rollback(self):
        self.rollbacks += 1
        self.server.rollback(self)

    def close(self):
        self.closed = True


class FakeServer:
    """A recorded PostgreSQL server: answer(sql, args, conn) gives the rows of a statement (None
    for a statement without rows) or raises; connect_error refuses connections."""

    def __init__(self, answers=None, connect_error: Exception | None = None):
        self.answers = answers or (lambda sql, args, conn: None)
        self.connect_error = connect_error
        self.conns: list[FakeConn] = []

    def answer(self, sql, args, conn):
        return self.answers(sql, args, conn)

    def commit(self, conn):
        """A transaction of conn committed (a stateful subclass keeps its changes)."""

    def rollback(self, conn):
        """A transaction of conn rolled back (a stateful subclass undoes its changes)."""

    def statements(self) -> list[str]:
        return [sql for conn in self.conns for sql, _ in conn.log]


def fake_psycopg2(monkeypatch, server: FakeServer) -> types.ModuleType:
    """Install a psycopg2 stand-in connected to server (sys.modules, for this test only)."""
    module = types.ModuleType("psycopg2")
    module.Error = FakeError
    module.OperationalError = FakeOperationalError

    def connect(**kwargs):
        if server.connect_error is not None:
            raise server.connect_error
        conn = FakeConn(server, kwargs)
        server.conns.append(conn)
        return conn

    module.connect = connect
    sql = types.ModuleType("psycopg2.sql")

    class Identifier:
        def __init__(self, name):
            self.name = name

        def __str__(self):
            return '"' + self.name.replace('"', '""') + '"'

    class SQL:
        def __init__(self, template):
            self.template = template

        def format(self, *parts):
            return self.template.format(*[str(p) for p in parts])

    sql.SQL, sql.Identifier = SQL, Identifier
    module.sql = sql
    monkeypatch.setitem(sys.modules, "psycopg2", module)
    monkeypatch.setitem(sys.modules, "psycopg2.sql", sql)
    return module


def no_psycopg2(monkeypatch) -> None:
    """Make ``import psycopg2`` fail as on a host without python3-psycopg2."""
    monkeypatch.setitem(sys.modules, "psycopg2", None)


# -- age ------------------------------------------------------------------------------------------


def age_key(folder: Path, name: str = "key") -> tuple[Path, str, str]:
    """A new age key pair: (identity file, identity text, recipient)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name + ".txt")
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    text = path.read_text()
    recipient = next(
        line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("# public key:")
    )
    return path, text, recipient


def age_encrypt(data: bytes, out: Path, recipient: str) -> Path:
    subprocess.run(
        ["age", "--encrypt", "--recipient", recipient, "--output", str(out)],
        input=data,
        check=True,
        capture_output=True,
    )
    return out


def age_decrypt(path: Path, identity: Path) -> bytes:
    return subprocess.run(
        ["age", "--decrypt", "--identity", str(identity), str(path)],
        check=True,
        capture_output=True,
    ).stdout


# -- backups on disk ------------------------------------------------------------------------------


def stamp_iso(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"


def write_backup(
    root: Path, database: str, stamp: str, data: bytes, ext: str = ".dump", **fields
) -> Path:
    """A backup as pg_backup_dump leaves it (archive, .sha256, manifest); its archive's path."""
    folder = root / database
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{database}_{stamp}{ext}"
    (folder / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (folder / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    at = stamp_iso(stamp)
    manifest = {
        "name": name,
        "database": database,
        "format": "sql" if ext.startswith(".sql") else "custom",
        "started": at,
        "ended": at,
        "duration_seconds": 1.5,
        "size_bytes": len(data),
        "sha256": digest,
        "server_version": "15.8",
        "verified": {"ok": True, "at": at, "problem": ""},
        "restore_test": None,
    }
    manifest.update(fields)
    (folder / f"{name}.json").write_text(json.dumps(manifest))
    return folder / name


def manifest_of(archive: Path) -> dict:
    return json.loads(archive.with_name(archive.name + ".json").read_text())


@contextlib.contextmanager
def umask_kept():
    """Restore the process umask the modules' run_module changes (0077)."""
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        yield
    finally:
        os.umask(umask)
