-- opsplay pg_maintenance: the slowest statements of this database from pg_stat_statements, when
-- the extension is installed here, into the session setting opsplay.slow_queries (read by
-- inspect.sql in the same session). PL/pgSQL parses the SELECT only when it runs, so a database
-- without the extension is no error; an extension without shared_preload_libraries is reported.
DO $opsplay$
BEGIN
  IF to_regclass('pg_stat_statements') IS NOT NULL THEN
    PERFORM set_config('opsplay.slow_queries', (
      SELECT coalesce(json_agg(q), '[]')::text FROM (
        SELECT left(regexp_replace(s.query, '\s+', ' ', 'g'), 300) AS query, s.calls,
               round(s.mean_exec_time::numeric, 2) AS mean_ms,
               round(s.total_exec_time::numeric, 2) AS total_ms, s.rows
        FROM pg_stat_statements s
        WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY s.mean_exec_time DESC LIMIT %(top)s) q), false);
  END IF;
EXCEPTION WHEN others THEN
  PERFORM set_config('opsplay.slow_queries', json_build_object('error', SQLERRM)::text, false);
END
$opsplay$
