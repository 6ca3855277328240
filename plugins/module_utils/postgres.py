"""PostgreSQL connection settings shared by opsplay's modules.

One place turns the login options (user, password, host or unix socket, port) into psycopg2's
connection arguments and libpq's environment, and one place words the two connection failures
an operator sees: ``PostgreSQL USER@WHERE:PORT is not reachable: REASON`` and
``database NAME does not exist on USER@WHERE:PORT``.

A module takes the settings as one ``connection`` option (``CONNECTION_SPEC``), which a role
passes as one argument bundle.
"""

from __future__ import annotations

import os
import re

# The ``connection`` option of a module: a dict with these keys.
CONNECTION_OPTIONS = {
    "login_user": {"type": "str", "default": "postgres"},
    "login_password": {"type": "str", "default": "", "no_log": True},
    "login_host": {"type": "str", "default": ""},
    "login_unix_socket": {"type": "str", "default": "/var/run/postgresql"},
    "login_port": {"type": "int", "default": 5432},
}
CONNECTION_SPEC = {"type": "dict", "required": True, "options": CONNECTION_OPTIONS}


class PostgresError(Exception):
    """A connection or statement failure, already worded for the operator (one line)."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (line breaks too) made one space."""
    return re.sub(r"\s+", " ", str(text)).strip()


def server(settings: dict) -> str:
    """The host, else the unix socket directory, that libpq connects to."""
    return settings.get("login_host") or settings.get("login_unix_socket") or ""


def where(settings: dict) -> str:
    """Where the module connects, as messages show it: ``postgres@/var/run/postgresql:5432``."""
    return "%s@%s:%s" % (settings.get("login_user"), server(settings), settings.get("login_port"))


def connect_kwargs(settings: dict, dbname: str, application_name: str) -> dict:
    """psycopg2.connect() arguments for ``dbname``."""
    return {
        "dbname": dbname,
        "host": server(settings),
        "port": int(settings.get("login_port") or 5432),
        "user": settings.get("login_user"),
        "password": settings.get("login_password") or None,
        "connect_timeout": 10,
        "application_name": application_name,
    }


def libpq_env(settings: dict, base: dict | None = None) -> dict:
    """The environment of a libpq tool (psql, pg_dump) connecting with ``settings``."""
    env = dict(os.environ if base is None else base)
    env["PGHOST"] = server(settings)
    env["PGPORT"] = str(settings.get("login_port"))
    env["PGUSER"] = str(settings.get("login_user"))
    if settings.get("login_password"):
        env["PGPASSWORD"] = settings["login_password"]
    return env


def unreachable(settings: dict, reason: object) -> str:
    """The one line saying the server did not answer, and libpq's reason."""
    return "PostgreSQL %s is not reachable: %s" % (where(settings), one_line(reason) or "no answer")


def missing_databases(settings: dict, missing: list, existing: list) -> str:
    """The one line naming the databases asked for that do not exist, and those that do."""
    return "database %s does not exist on %s (existing: %s)" % (
        ", ".join(missing),
        where(settings),
        ", ".join(existing),
    )


def connection_failure(settings: dict, dbname: str, reason: object) -> str:
    """The message of a failed connection to ``dbname``: missing database, else unreachable."""
    text = one_line(reason)
    if 'database "%s" does not exist' % dbname in text:
        return "database %s does not exist on %s" % (dbname, where(settings))
    return unreachable(settings, text)


def error_line(exc: BaseException) -> str:
    """The primary message of a psycopg2 error (without its DETAIL/CONTEXT lines), one line."""
    lines = str(exc).strip().splitlines()
    return one_line(lines[0]) if lines else type(exc).__name__


def connect(settings: dict, dbname: str, application_name: str = "opsplay"):
    """An autocommit psycopg2 connection to ``dbname``; PostgresError with the one-line
    message when psycopg2 is missing or the connection fails."""
    try:
        import psycopg2
    except ImportError:
        raise PostgresError("python3-psycopg2 is missing on the host") from None
    try:
        conn = psycopg2.connect(**connect_kwargs(settings, dbname, application_name))
    except psycopg2.OperationalError as exc:
        raise PostgresError(connection_failure(settings, dbname, exc)) from exc
    conn.autocommit = True
    return conn
