"""plugins/module_utils/postgres.py: login settings to psycopg2/libpq, and the two one-line
connection failures."""

from __future__ import annotations

from ansible_collections.opsplay.ops.plugins.module_utils import postgres

SOCKET = {
    "login_user": "postgres",
    "login_password": "",
    "login_host": "",
    "login_unix_socket": "/var/run/postgresql",
    "login_port": 5432,
}
TCP = dict(SOCKET, login_host="db1", login_user="ops", login_password="s3cret", login_port=6432)


def test_the_socket_unless_a_host_is_given():
    assert postgres.where(SOCKET) == "postgres@/var/run/postgresql:5432"
    assert postgres.where(TCP) == "ops@db1:6432"
    kwargs = postgres.connect_kwargs(SOCKET, "app", "opsplay test")
    assert kwargs["host"] == "/var/run/postgresql" and kwargs["password"] is None
    assert kwargs["dbname"] == "app" and kwargs["application_name"] == "opsplay test"
    assert postgres.connect_kwargs(TCP, "app", "x")["password"] == "s3cret"


def test_libpq_environment():
    env = postgres.libpq_env(TCP, base={"PATH": "/bin", "PGPASSWORD": "old"})
    assert env == {
        "PATH": "/bin",
        "PGHOST": "db1",
        "PGPORT": "6432",
        "PGUSER": "ops",
        "PGPASSWORD": "s3cret",
    }
    assert postgres.libpq_env(SOCKET, base={})["PGHOST"] == "/var/run/postgresql"
    assert "PGPASSWORD" not in postgres.libpq_env(SOCKET, base={})


def test_unreachable_is_one_line_with_libpq_reason():
    reason = (
        'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
        "No such file or directory\n\tIs the server running locally and accepting connections?\n"
    )
    message = postgres.connection_failure(SOCKET, "postgres", reason)
    assert message == (
        "PostgreSQL postgres@/var/run/postgresql:5432 is not reachable: connection to server on"
        ' socket "/var/run/postgresql/.s.PGSQL.5432" failed: No such file or directory Is the'
        " server running locally and accepting connections?"
    )
    assert postgres.unreachable(SOCKET, "") == (
        "PostgreSQL postgres@/var/run/postgresql:5432 is not reachable: no answer"
    )


def test_missing_database_names_it_and_where():
    reason = (
        'connection to server at "db1", port 6432 failed: FATAL:  database "shop" does not exist'
    )
    assert (
        postgres.connection_failure(TCP, "shop", reason)
        == "database shop does not exist on ops@db1:6432"
    )
    assert postgres.missing_databases(SOCKET, ["no_such_db"], ["app", "postgres"]) == (
        "database no_such_db does not exist on postgres@/var/run/postgresql:5432"
        " (existing: app, postgres)"
    )


def test_error_line_keeps_the_primary_message_only():
    exc = Exception("canceling statement due to lock timeout\nCONTEXT:  while reindexing\n")
    assert postgres.error_line(exc) == "canceling statement due to lock timeout"
    assert postgres.error_line(Exception("")) == "Exception"
