-- opsplay pg_maintenance: runaway sessions. Queries active longer than %(active_seconds)s and
-- sessions idle in transaction longer than %(idle_seconds)s, among ordinary client backends only:
-- never replication (walsender), autovacuum or other background processes, never this session,
-- never superusers' sessions unless %(superusers)s; only in %(databases)s when it is not empty.
-- `key` identifies the session and its query (or idle transaction) so that the action touches
-- exactly what was listed, not a new query that reused the pid.
SELECT a.pid, a.usename, a.datname, a.application_name, a.client_addr::text AS client_addr, a.state,
       CASE WHEN a.state = 'active' THEN 'cancel' ELSE 'terminate' END AS action,
       round(extract(epoch FROM clock_timestamp() - CASE WHEN a.state = 'active' THEN a.query_start
                                                      ELSE a.state_change END)::numeric, 1) AS seconds,
       left(regexp_replace(a.query, '\s+', ' ', 'g'), 200) AS query,
       a.pid || ':' || extract(epoch FROM a.backend_start) || ':'
         || extract(epoch FROM CASE WHEN a.state = 'active' THEN a.query_start ELSE a.state_change END) AS key
FROM pg_stat_activity a
LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid()
  AND (%(superusers)s OR NOT coalesce(r.rolsuper, false))
  AND (cardinality(ARRAY(SELECT json_array_elements_text(%(databases)s::json))) = 0 OR a.datname = ANY(ARRAY(SELECT json_array_elements_text(%(databases)s::json))))
  AND ((a.state = 'active'
        AND a.query_start < clock_timestamp() - make_interval(secs => %(active_seconds)s))
    OR (a.state IN ('idle in transaction', 'idle in transaction (aborted)')
        AND a.state_change < clock_timestamp() - make_interval(secs => %(idle_seconds)s)))
ORDER BY seconds DESC, a.pid
