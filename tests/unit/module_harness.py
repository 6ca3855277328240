"""Shared helpers for running a module's main() in this process (so its lines count for
``pytest --cov=plugins``), and stand-ins for what a host has and this machine has not.

``run_main(module, args)`` gives main() its arguments the way Ansible's own module tests do
(``ansible.module_utils.testing.patch_module_args``), lets the real ``exit_json``/``fail_json``
print the result JSON and exit, and returns ``(rc, result)``. ``check_mode=True`` sets
``_ansible_check_mode`` as ansible-playbook --check does.

``FakePsycopg2`` is a recorded stand-in for psycopg2 (absent on this machine, and no PostgreSQL
runs here): each statement goes to a script function that answers rows or raises the fake's
``Error``; every connection and statement is logged. molecule/pg_maintenance proves the real
server.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import types

from ansible.module_utils.testing import patch_module_args


def run_main(module, args: dict, *, check_mode: bool = False) -> tuple[int, dict]:
    """Run ``module.main()`` with ``args``; (exit code, the JSON result it printed)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit as done:
            rc = done.code
        else:  # pragma: no cover - a module always exits through exit_json/fail_json
            raise AssertionError("main() returned without exit_json or fail_json")
    return rc, json.loads(out.getvalue().strip().splitlines()[-1])


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn
        self.description = None
        self._rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        self.conn.fake.log.append(("execute", self.conn.dbname, sql, args))
        rows = self.conn.fake.script(self.conn.dbname, sql, args)
        self._rows = list(rows or [])
        self.description = [("column",)] if rows is not None else None

    def fetchall(self):
        return self._rows


class FakeConnection:
    def __init__(self, fake, dbname):
        self.fake, self.dbname = fake, dbname
        self.autocommit = False
        self.closed = False

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True
        self.fake.log.append(("close", self.dbname))


class FakePsycopg2:
    """``install(monkeypatch)`` puts it in sys.modules as ``psycopg2``. ``script(dbname, sql,
    args)`` answers a statement: a list of rows (a result set), None (no result set), or
    raises ``self.Error``/``self.OperationalError``. ``refuse`` (dbname -> message) makes
    connect() fail with OperationalError, as libpq does."""

    def __init__(self, script, refuse=None):
        self.script = script
        self.refuse = dict(refuse or {})
        self.log: list = []
        self.connections: list = []
        self.module = types.ModuleType("psycopg2")

        class Error(Exception):
            pass

        class OperationalError(Error):
            pass

        self.Error, self.OperationalError = Error, OperationalError
        self.module.Error, self.module.OperationalError = Error, OperationalError
        self.module.connect = self.connect

    def connect(self, **kwargs):
        self.log.append(("connect", kwargs["dbname"], kwargs))
        if kwargs["dbname"] in self.refuse:
            raise self.OperationalError(self.refuse[kwargs["dbname"]])
        conn = FakeConnection(self, kwargs["dbname"])
        self.connections.append(conn)
        return conn

    def install(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "psycopg2", self.module)
        return self

    def statements(self, dbname=None):
        """The SQL executed (on ``dbname`` only, when given), in order."""
        return [e[2] for e in self.log if e[0] == "execute" and dbname in (None, e[1])]
