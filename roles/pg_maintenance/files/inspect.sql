-- opsplay pg_maintenance: everything about one database in one round trip (one JSON row): the
-- statistics of every table and index (plugins/module_utils/pg_maintenance.py decides what to
-- vacuum, rebuild and drop from them) and the report's lists.
-- Argument (psycopg named args; hence no percent sign below): top (rows per report list).
-- The slow queries come from the DO block run just before, through the opsplay.slow_queries setting.
WITH params AS (
  SELECT %(top)s::int AS top,
         current_setting('block_size')::numeric AS block_size
),
tables AS (
  SELECT s.relid,
         quote_ident(s.schemaname) || '.' || quote_ident(s.relname) AS name,
         s.schemaname || '.' || s.relname AS plain_name,
         s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
         round(s.n_dead_tup::numeric / greatest(s.n_live_tup + s.n_dead_tup, 1), 4)::float8 AS dead_ratio,
         round(s.n_mod_since_analyze::numeric / greatest(s.n_live_tup, 1), 4)::float8 AS mod_ratio,
         pg_total_relation_size(s.relid) AS total_bytes,
         pg_relation_size(s.relid) AS table_bytes,
         s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
  FROM pg_stat_user_tables s
  JOIN pg_class c ON c.oid = s.relid
  WHERE c.relkind IN ('r', 'm', 't')
),
indexes AS (
  SELECT i.indexrelid, i.indrelid, ic.relname AS index_name,
         quote_ident(n.nspname) || '.' || quote_ident(ic.relname) AS name,
         quote_ident(n.nspname) || '.' || quote_ident(tc.relname) AS table_name,
         i.indisunique, i.indisprimary, i.indisvalid, am.amname,
         pg_relation_size(i.indexrelid) AS bytes, ic.reltuples,
         coalesce(st.idx_scan, 0) AS idx_scan,
         -- btree size estimate: per tuple an 8-byte header plus the MAXALIGNed key width
         -- (pg_stats avg_width, else the type length, else 32) plus a 4-byte line pointer, on
         -- pages of block_size minus page header and btree special space, at the fillfactor,
         -- plus the metapage. Bloat = 1 - estimate / actual pages.
         CASE WHEN am.amname = 'btree' AND ic.reltuples >= 0 AND pg_relation_size(i.indexrelid) > 0 THEN
           greatest(0, round(1 - (1 + ceil(ic.reltuples::numeric * (8 + ceil(w.width / 8) * 8 + 4)
                     / ((p.block_size - 24 - 16) * coalesce(
                          substring(array_to_string(ic.reloptions, ',') FROM 'fillfactor=([0-9]+)')::numeric,
                          90) / 100)))
                 / (pg_relation_size(i.indexrelid) / p.block_size), 4))::float8
         END AS bloat_ratio
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class tc ON tc.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
  JOIN pg_am am ON am.oid = ic.relam
  LEFT JOIN pg_stat_user_indexes st ON st.indexrelid = i.indexrelid
  CROSS JOIN params p
  CROSS JOIN LATERAL (
    SELECT coalesce(sum(coalesce(s.avg_width, nullif(a.attlen, -1), 32) * (1 - coalesce(s.null_frac, 0)))::numeric, 0)
             AS width
    FROM pg_attribute a
    LEFT JOIN LATERAL (
      SELECT ps.avg_width, ps.null_frac FROM pg_stats ps
      WHERE ps.schemaname = n.nspname AND ps.attname = a.attname
        AND ps.tablename IN (ic.relname, tc.relname)
      ORDER BY ps.tablename = ic.relname DESC LIMIT 1) s ON true
    WHERE a.attrelid = i.indexrelid AND a.attnum > 0) w
  WHERE ic.relkind = 'i' AND tc.relkind IN ('r', 'm', 't')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
)
SELECT json_build_object(
  'database', current_database(),
  'size_bytes', pg_database_size(current_database()),
  'stats_reset', (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
  'tables', (SELECT coalesce(json_agg(json_build_object('name', t.name, 'plain_name', t.plain_name,
                      'n_live_tup', t.n_live_tup, 'n_dead_tup', t.n_dead_tup,
                      'n_mod_since_analyze', t.n_mod_since_analyze, 'dead_ratio', t.dead_ratio,
                      'mod_ratio', t.mod_ratio)), '[]') FROM tables t),
  -- building: a running CREATE INDEX / REINDEX on its table (an invalid index may be its work).
  'indexes', (SELECT coalesce(json_agg(json_build_object('name', x.name, 'relname', x.index_name,
                       'table', x.table_name, 'bytes', x.bytes, 'bloat_ratio', x.bloat_ratio,
                       'valid', x.indisvalid,
                       'building', EXISTS (SELECT 1 FROM pg_stat_progress_create_index pr
                                           WHERE pr.relid = x.indrelid
                                             AND pr.datid = (SELECT oid FROM pg_database
                                                             WHERE datname = current_database())))),
                       '[]') FROM indexes x),
  'largest_tables', (SELECT coalesce(json_agg(t), '[]') FROM (
      SELECT t.name, t.total_bytes, t.table_bytes, t.n_live_tup, t.n_dead_tup, t.dead_ratio,
             t.last_vacuum, t.last_autovacuum, t.last_analyze, t.last_autoanalyze
      FROM tables t ORDER BY t.total_bytes DESC, t.name LIMIT (SELECT top FROM params)) t),
  'dead_tuples', (SELECT coalesce(json_agg(t), '[]') FROM (
      SELECT t.name, t.n_dead_tup, t.n_live_tup, t.dead_ratio FROM tables t WHERE t.n_dead_tup > 0
      ORDER BY t.n_dead_tup DESC, t.name LIMIT (SELECT top FROM params)) t),
  'index_bloat', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT x.name, x.table_name AS table, x.bytes, x.bloat_ratio,
             round(x.bytes * x.bloat_ratio)::bigint AS bloat_bytes
      FROM indexes x WHERE x.bloat_ratio > 0
      ORDER BY x.bytes * x.bloat_ratio DESC, x.name LIMIT (SELECT top FROM params)) x),
  'unused_indexes', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT x.name, x.table_name AS table, x.bytes FROM indexes x
      WHERE x.idx_scan = 0 AND x.indisvalid AND NOT x.indisunique AND NOT x.indisprimary
      ORDER BY x.bytes DESC, x.name) x),
  'slow_queries', nullif(current_setting('opsplay.slow_queries', true), '')::json
) AS report
