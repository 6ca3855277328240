"""plugins/module_utils/pg_user_tables.py: the one owner of which tables pg_backup counts the rows
of and how it names them. The restore test's two queries (the server's insert statistics, the
exact count) are built from it, and roles/pg_backup/files/row_counts.sql is its exact count as a
file. What PostgreSQL answers to them: molecule/pg_backup (restore test, row counts compared)."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.opsplay.ops.plugins.module_utils import pg_user_tables as ut
from ansible_collections.opsplay.ops.plugins.modules import pg_backup_restore_test as rt

ROW_COUNTS_SQL = Path(__file__).resolve().parents[2] / "roles/pg_backup/files/row_counts.sql"


def test_both_queries_of_the_restore_test_select_and_name_the_same_tables():
    for query in (ut.ROW_COUNTS, ut.INSERTED_ROWS):
        assert query.startswith(f'SELECT {ut.TABLE_NAME} AS "table",\n')
        assert query.endswith(f"\n{ut.USER_TABLES}\nORDER BY 1\n")
        assert query.count("FROM pg_catalog.pg_class") == 1
    assert "count(*)" in ut.ROW_COUNTS and "FROM ONLY" in ut.ROW_COUNTS
    assert "pg_stat_get_tuples_inserted(c.oid)" in ut.INSERTED_ROWS


def test_the_user_tables_are_the_ordinary_tables_outside_the_catalogs():
    assert "c.relkind = 'r'" in ut.USER_TABLES  # leaves, as the archive's COPY data holds them
    for schema in ("'pg_catalog'", "'information_schema'", "'pg\\_toast%'", "'pg\\_temp%'"):
        assert schema in ut.USER_TABLES


def test_the_restore_test_asks_the_server_the_owners_queries(monkeypatch, tmp_path):
    test = rt.RestoreTest.__new__(rt.RestoreTest)
    asked = []

    def sql(dbname, statement, args=None, fetch=False):
        asked.append(statement)
        return [("public.orders", 7)]

    monkeypatch.setattr(test, "sql", sql, raising=False)
    assert test.inserted_rows("scratch") == test.count_rows("scratch") == {"public.orders": 7}
    assert asked == [ut.INSERTED_ROWS, ut.ROW_COUNTS]


def test_row_counts_sql_is_the_exact_count_as_a_file():
    text = ROW_COUNTS_SQL.read_text(encoding="utf-8")
    body = "".join(line for line in text.splitlines(True) if not line.startswith("--"))
    assert body == ut.ROW_COUNTS
