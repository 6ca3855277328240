-- Exact row count of every user table (ordinary and partitioned), one row per table.
-- Used at backup time (inside pg_dump's snapshot) and after a restore test, so both
-- sides count the same way.
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
