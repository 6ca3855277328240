-- opsplay pg_maintenance: the invalid indexes of this database, as inspect.sql lists indexes
-- (plugins/module_utils/pg_maintenance.py picks the leftovers of failed concurrent rebuilds).
-- Run again after a rebuild failed, to find the *_ccnew index it left.
SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname) AS name, ic.relname,
       quote_ident(n.nspname) || '.' || quote_ident(tc.relname) AS table,
       i.indisvalid AS valid,
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index pr
               WHERE pr.relid = i.indrelid
                 AND pr.datid = (SELECT oid FROM pg_database WHERE datname = current_database()))
         AS building
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE NOT i.indisvalid
ORDER BY 1
