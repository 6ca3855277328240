-- opsplay pg_maintenance: server-wide facts in one round trip, run in the maintenance database.
-- Arguments: %(wanted)s text[] (databases asked for; empty = every connectable non-template one).
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
  'databases', (SELECT coalesce(json_agg(d.datname ORDER BY d.datname), '[]')
                FROM pg_database d
                WHERE CASE WHEN cardinality(ARRAY(SELECT json_array_elements_text(%(wanted)s::json))) = 0
                           THEN NOT d.datistemplate AND d.datallowconn
                           ELSE d.datname = ANY(ARRAY(SELECT json_array_elements_text(%(wanted)s::json))) END),
  'existing', (SELECT coalesce(json_agg(d.datname ORDER BY d.datname), '[]') FROM pg_database d
               WHERE NOT d.datistemplate AND d.datallowconn),
  'missing', (SELECT coalesce(json_agg(w), '[]')
              FROM unnest(ARRAY(SELECT json_array_elements_text(%(wanted)s::json))) w
              WHERE NOT EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = w AND d.datallowconn)),
  'blocked', (SELECT coalesce(json_agg(b ORDER BY b.seconds DESC), '[]') FROM blocked b),
  'blocking', (SELECT coalesce(json_agg(x ORDER BY x.pid), '[]') FROM (
                 SELECT a.pid, a.usename, a.datname, a.state,
                        round(extract(epoch FROM clock_timestamp() - a.xact_start)::numeric, 1) AS xact_seconds,
                        left(regexp_replace(a.query, '\s+', ' ', 'g'), 300) AS query
                 FROM pg_stat_activity a
                 WHERE a.pid IN (SELECT unnest(b.blocked_by) FROM blocked b)) x)
) AS server
