"""The user tables of a PostgreSQL database as opsplay's pg_backup counts their rows: the one
owner of which tables those are and how each is named, for every query that counts them.

Every ordinary table (relkind 'r': each leaf of a partitioned table, never its parent, as
pg_dump's COPY data holds them and module_utils/pg_copy_count.py counts them) outside the
catalogs, named ``schema.table`` quoted as needed (format %I). roles/pg_backup/files/row_counts.sql
is ROW_COUNTS as a file, for a check that runs a query file (molecule/pg_backup);
tests/unit/test_pg_user_tables.py keeps it equal.
"""

from __future__ import annotations

# The table's name, as the archive's COPY statements name it once unquoted: schema.table.
TABLE_NAME = "format('%I.%I', n.nspname, c.relname)"

# FROM and WHERE of every user table (c: its pg_class row, n: its schema's pg_namespace row).
USER_TABLES = """FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp%'"""


def per_table(value: str) -> str:
    """SELECT ("table", "rows") of every user table, value an expression of c and n; sorted."""
    return 'SELECT %s AS "table",\n       %s AS "rows"\n%s\nORDER BY 1\n' % (
        TABLE_NAME,
        value,
        USER_TABLES,
    )


# The exact row count of every user table (count(*) of each, ONLY: a leaf's own rows).
ROW_COUNTS = per_table(
    "(xpath('/row/n/text()',\n"
    "              query_to_xml(format('SELECT count(*) AS n FROM ONLY %I.%I', n.nspname,"
    " c.relname),\n"
    "                           false, true, '')))[1]::text::bigint"
)

# The rows the server inserted into each user table, minus those it deleted (its statistics,
# pg_stat_get_tuples_*: after a restore into a new database, the sum of the COPY command tags).
INSERTED_ROWS = per_table(
    "pg_catalog.pg_stat_get_tuples_inserted(c.oid) - pg_catalog.pg_stat_get_tuples_deleted(c.oid)"
)
