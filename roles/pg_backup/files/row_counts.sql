-- Exact row count of every user table (ordinary tables: each leaf of a partitioned one), one
-- row per table. Written from ROW_COUNTS of plugins/module_utils/pg_user_tables.py, the owner of
-- which tables are counted and how they are named (the restore test builds its queries from it);
-- tests/unit/test_pg_user_tables.py keeps this file equal to it. Read by molecule/pg_backup.
SELECT format('%I.%I', n.nspname, c.relname) AS "table",
       (xpath('/row/n/text()',
              query_to_xml(format('SELECT count(*) AS n FROM ONLY %I.%I', n.nspname, c.relname),
                           false, true, '')))[1]::text::bigint AS "rows"
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp%'
ORDER BY 1
