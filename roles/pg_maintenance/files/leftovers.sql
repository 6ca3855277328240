-- opsplay pg_maintenance: invalid indexes named like the transient ones of REINDEX CONCURRENTLY
-- (*_ccnew, *_ccold) that no running CREATE INDEX / REINDEX is building right now.
SELECT current_database() AS database,
       quote_ident(n.nspname) || '.' || quote_ident(ic.relname) AS name,
       quote_ident(n.nspname) || '.' || quote_ident(tc.relname) AS table
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE NOT i.indisvalid AND ic.relname ~ '_cc(new|old)[0-9]*$'
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index pr
                  WHERE pr.relid = i.indrelid
                    AND pr.datid = (SELECT oid FROM pg_database WHERE datname = current_database()))
ORDER BY 2
