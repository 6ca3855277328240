-- opsplay pg_maintenance: server-wide facts in one round trip, run in the maintenance database.
-- The catalog of databases comes back whole: plugins/module_utils/pg_maintenance.py chooses.
-- Blocked and blocking sessions use pg_blocking_pids(), the runbooks' pg_locks self-join done by
-- the server itself.
WITH blocked AS (
  SELECT a.pid, a.usename, a.datname, a.state, a.wait_event_type, a.wait_event,
         pg_blocking_pids(a.pid) AS blocked_by,
         round(extract(epoch FROM clock_timestamp() - a.query_start)::numeric, 1) AS seconds,
         left(regexp_replace(a.query, '\s+', ' ', 'g'), 300) AS query
  FROM pg_stat_activity a
  WHERE cardinality(pg_blocking_pids(a.pid)) > 0
)
SELECT json_build_object(
  'version', current_setting('server_version'),
  'catalog', (SELECT coalesce(json_agg(json_build_object('name', d.datname, 'template', d.datistemplate,
                                         'allow_connections', d.datallowconn) ORDER BY d.datname), '[]')
              FROM pg_database d),
  'blocked', (SELECT coalesce(json_agg(b ORDER BY b.seconds DESC), '[]') FROM blocked b),
  'blocking', (SELECT coalesce(json_agg(x ORDER BY x.pid), '[]') FROM (
                 SELECT a.pid, a.usename, a.datname, a.state,
                        round(extract(epoch FROM clock_timestamp() - a.xact_start)::numeric, 1) AS xact_seconds,
                        left(regexp_replace(a.query, '\s+', ' ', 'g'), 300) AS query
                 FROM pg_stat_activity a
                 WHERE a.pid IN (SELECT unnest(b.blocked_by) FROM blocked b)) x)
) AS server
