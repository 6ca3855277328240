"""PostgreSQL procedures against the plain tools they wrap, on one lab db host (issue 20).

    .venv/bin/python benchmarks/pg.py --inventory-dir DIR [--env lab] [--scale small] [--reps 3]
                                      [--only backup,restore-test,vacuum,reindex]

Creates its own data on the environment's first db_servers host (podman exec into the
container, psql as postgres), in databases named bench_* only, and drops them at the end with
the backups it made. Every opsplay run goes through the CLI (`opsplay run PROCEDURE --env ENV
--limit HOST`) with -e pointing the procedure at the bench_* databases, so it measures whatever
is committed. Each measure is the median of --reps runs, opsplay and the plain tool alternating
in the same process, so machine load affects both sides:

  backup        `opsplay run backup` / `pg_dump -Fc` at the role's compression level, on a
                database of text, numbers and timestamps (random words and md5, compressing like
                real data) whose plain dump takes at least 30 s at the default scale; measured
                after one unmeasured backup, so each run is a nightly one with a previous backup;
                and `opsplay run backup` of an empty database (the fixed cost)
  restore-test  `opsplay run restore-test` / `createdb` + `pg_restore` + `dropdb`, same database
  vacuum        `opsplay run vacuum` / a whole-database `VACUUM ANALYZE`, 10 tables (~1 GB at the
                default scale): 3 heavily bloated (half the rows updated), 7 vacuumed and lightly
                changed since (1 % of rows updated); each side starts from a fresh copy of one
                template database, analyzed (a copy has no pg_stat_user_tables counts of its
                own); and `opsplay run vacuum` with nothing to do
  reindex       `opsplay run reindex` / `REINDEX TABLE` on a table with 3 bloated indexes (fresh
                copy each side), and the share of each run during which a lock stronger than
                SHARE UPDATE EXCLUSIVE was held on the database's tables or indexes (a watcher
                thread samples pg_locks every ~20 ms through one psql session; an index already
                dead, indislive false - the old index REINDEX CONCURRENTLY drops at its end - is
                left out: no query plans with it or waits for its lock; so is a relation the
                sampling session cannot see in pg_class, one created by a transaction not yet
                committed - the new index REINDEX CONCURRENTLY builds - or already dropped:
                no other session can name it, so none can wait for it)

--only runs some measures (restore-test needs backup's; the data of the others is not created).
Prints a table, each row with its target and met / not met, and writes benchmarks/results/
pg-STAMP.json. Exit 2 with one line when the inventory, the host or PostgreSQL is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OPSPLAY = str(BIN / "opsplay")
BACKUP_DIR = "/var/backups/postgresql"  # roles/pg_backup's default pg_backup_dir
DUMP_FILE = "/var/tmp/bench_big.plain.dump"
METRICS = "/var/lib/prometheus/node-exporter/pg_backup.prom"  # pg_backup_metrics_dir's file
BIG, EMPTY, RESTORED = "bench_big", "bench_empty", "bench_restore_plain"
VACUUM_TPL, VACUUM_DB = "bench_vacuum_tpl", "bench_vacuum"
REINDEX_TPL, REINDEX_DB = "bench_reindex_tpl", "bench_reindex"
DATABASES = (BIG, EMPTY, RESTORED, VACUUM_DB, VACUUM_TPL, REINDEX_DB, REINDEX_TPL)
BLOATED = ("bloated_1", "bloated_2", "bloated_3")
CALM = tuple(f"calm_{i}" for i in range(1, 8))
STRONG_LOCKS = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


class BenchError(Exception):
    """A step failed: one line, exit 2 for a missing lab, 1 otherwise."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Scale:
    big_rows: int  # bench_big's one large table
    vacuum_rows: int  # per table of the 10
    reindex_rows: int  # before 70 % are deleted
    min_dump_seconds: float  # the plain dump must take at least this long (0: not checked)


SCALES = {
    # ~200 bytes a row: bench_big ~4 GB, its pg_dump -Fc -Z1 ~31 s here (15M rows dumped in
    # 23.5-24.8 s, 2026-12-01: under the 30 s; 12M in 27.8 s on 2026-11-30), 10 tables
    # of ~120 MB
    "full": Scale(big_rows=20_000_000, vacuum_rows=500_000, reindex_rows=3_000_000,
                  min_dump_seconds=30.0),
    "small": Scale(big_rows=400_000, vacuum_rows=30_000, reindex_rows=300_000,
                   min_dump_seconds=0.0),
}  # fmt: skip

# ~100 common words: the notes are sentences of them, so the data compresses like prose
WORDS_TEXT = (
    "the of and to in is you that it he was for on are as with his they at be this have from "
    "or one had by word but not what all were we when your can said there use an each which "
    "she do how their if will up other about out many then them these so some her would make "
    "like him into time has look two more write go see number no way could people my than first "
    "water been call who oil its now find long down day did get come made may part order invoice "
    "customer shipped delayed paid refund address street city warehouse parcel returned"
)
WORDS = tuple(WORDS_TEXT.split())


# --- pure logic (tests/unit/test_benchmark_pg.py) -------------------------------------------


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def lock_share(samples: list[tuple[float, str]], start: float, end: float) -> float | None:
    """The share of the samples taken in [start, end] that saw a strong lock (a non-empty
    description); None when no sample fell in the interval."""
    inside = [held for t, held in samples if start <= t <= end]
    if not inside:
        return None
    return sum(1 for held in inside if held) / len(inside)


def verdict(value: float | None, target: float) -> str:
    """'met' when value is at most target; 'not met' otherwise or when there is no value."""
    return "met" if value is not None and value <= target else "not met"


def compress_flag(method: str, level: int) -> str:
    """pg_dump's compression option for the role's method and level (gzip as -Z N, which every
    pg_dump takes; lz4/zstd as --compress=METHOD:LEVEL, PostgreSQL 16+)."""
    return f"-Z{level}" if method == "gzip" else f"--compress={method}:{level}"


def format_table(rows: list[dict]) -> str:
    """Rows of {measure, opsplay, plain, ratio, target, result} as an aligned text table."""
    head = {"measure": "measure", "opsplay": "opsplay", "plain": "plain tool",
            "ratio": "ratio", "target": "target", "result": "result"}  # fmt: skip
    lines = [head, *rows]
    widths = {k: max(len(str(r.get(k, ""))) for r in lines) for k in head}
    out = []
    for r in lines:
        cells = [str(r.get(k, "")) for k in head]
        out.append(
            "  ".join(
                c.ljust(widths[k]) if k == "measure" else c.rjust(widths[k])
                for c, k in zip(cells, head, strict=True)
            ).rstrip()
        )
        if r is head:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def ratio_row(measure: str, mine: float, plain: float, target: float) -> dict:
    ratio = mine / plain if plain else None
    return {
        "measure": measure,
        "opsplay": seconds(mine),
        "plain": seconds(plain),
        "ratio": "-" if ratio is None else f"{ratio:.2f}",
        "target": f"<= {target:g}",
        "result": verdict(ratio, target),
    }


def fixed_row(measure: str, mine: float, target: float) -> dict:
    return {
        "measure": measure,
        "opsplay": seconds(mine),
        "target": f"<= {target:g} s",
        "result": verdict(mine, target),
    }


# --- the lab ----------------------------------------------------------------------------------


class Lab:
    """One db host of the environment: psql and shell as postgres through podman exec, and the
    opsplay CLI limited to that host."""

    def __init__(self, inventory_dir: Path, env: str, host: str, state_dir: Path) -> None:
        self.inventory_dir, self.env, self.host = inventory_dir, env, host
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OPSPLAY_", "ANSIBLE_"))}
        base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
        self.environ = {**base, "OPSPLAY_STATE_DIR": str(state_dir)}

    def sh(self, script: str, user: str = "postgres") -> str:
        """Run a shell script in the container; its stdout. A failure raises BenchError."""
        cmd = ["podman", "exec", "-u", user, self.host, "sh", "-ec", script]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise BenchError(f"{self.host}: `{script[:70]}` failed ({proc.returncode}): {last}")
        return proc.stdout

    def psql(self, sql: str, database: str = "postgres") -> str:
        cmd = ["podman", "exec", "-i", "-u", "postgres", self.host, "psql", "-X", "-q", "-At",
               "-v", "ON_ERROR_STOP=1", "-d", database]  # fmt: skip
        proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise BenchError(f"{self.host}: psql -d {database} failed: {last}")
        return proc.stdout.strip()

    def opsplay(self, procedure: str, extra: dict) -> float:
        """Wall seconds of `opsplay run PROCEDURE --env ENV --limit HOST -e EXTRA`."""
        cmd = [OPSPLAY, "--inventory-dir", str(self.inventory_dir), "run", procedure,
               "--env", self.env, "--limit", self.host, "--yes", "--json",
               "-e", json.dumps(extra)]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.environ, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise BenchError(f"opsplay run {procedure} failed (exit {proc.returncode}): "
                             f"{failure_line(proc.stdout, proc.stderr)}")  # fmt: skip
        return elapsed

    def write(self, path: str, content: str) -> None:
        """Write a file in the container as root (atomically: a temporary name, then mv)."""
        cmd = ["podman", "exec", "-i", self.host, "sh", "-ec",
               f"cat > {path}.bench && mv {path}.bench {path}"]  # fmt: skip
        subprocess.run(cmd, input=content, text=True, check=True, capture_output=True)

    def timed_sh(self, script: str) -> float:
        start = time.perf_counter()
        self.sh(script)
        return time.perf_counter() - start


class Session:
    """One psql session on the host, opened before a plain statement is timed: the plain side's
    time is the statement's, without podman exec's and psql's start."""

    def __init__(self, lab: Lab, database: str) -> None:
        cmd = ["podman", "exec", "-i", "-u", "postgres", lab.host, "psql", "-X", "-q", "-At",
               "-v", "ON_ERROR_STOP=1", "-d", database]  # fmt: skip
        self.where = f"{lab.host}: psql -d {database}"
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1,
        )  # fmt: skip
        self.run("SELECT 1;")

    def run(self, sql: str) -> float:
        """Seconds until sql has run (a failure ends psql: ON_ERROR_STOP)."""
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        start = time.perf_counter()
        self.proc.stdin.write(f"{sql}\nSELECT 'bench-done';\n")
        self.proc.stdin.flush()
        while (line := self.proc.stdout.readline()) and line.strip() != "bench-done":
            pass
        if not line:
            last = (self.proc.stderr.read().strip().splitlines() or ["no message"])[-1]
            raise BenchError(f"{self.where} failed: {last}")
        return time.perf_counter() - start

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def failure_line(stdout: str, stderr: str) -> str:
    """The first failure message of an opsplay --json summary, else stderr's last line."""
    try:
        summary = json.loads(stdout)
    except ValueError:
        summary = {}
    for name, host in (summary.get("hosts") or {}).items():
        if isinstance(host, dict) and host.get("message"):
            return f"{name}: {host.get('failed_task') or 'failed'}: {host['message']}"[:300]
    return (stderr.strip().splitlines() or ["no message"])[-1][:300]


def find_host(inventory_dir: Path, env: str, environ: dict[str, str]) -> str:
    """The environment's first db_servers host, through `opsplay hosts --json`."""
    cmd = [OPSPLAY, "--inventory-dir", str(inventory_dir), "hosts", "--env", env, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=environ, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise BenchError(f"no lab: {last.removeprefix('opsplay: ')}", code=2)
    hosts = [h for h, groups in json.loads(proc.stdout)["hosts"].items() if "db_servers" in groups]
    if not hosts:
        raise BenchError(f"no lab: environment '{env}' has no db_servers host", code=2)
    return hosts[0]


def check_lab(lab: Lab, need_gb: float) -> None:
    """The container runs, PostgreSQL answers, and the data directory has room."""
    try:
        lab.sh("pg_isready -q")
    except BenchError as err:
        why = f"no lab: {lab.host} is not running or PostgreSQL is down ({err})"
        raise BenchError(why, 2) from None
    free_kb = int(lab.sh("df -Pk /var/lib/postgresql | awk 'NR==2 {print $4}'").strip())
    if free_kb / 2**20 < need_gb:
        raise BenchError(
            f"{lab.host}: {free_kb / 2**20:.1f} GB free under /var/lib/postgresql, the "
            f"benchmark needs about {need_gb:.0f} GB at this scale (try --scale small)",
            code=2,
        )


# --- data -------------------------------------------------------------------------------------


def phrases_sql() -> str:
    """10,000 phrases of 8 random words, the notes' material."""
    words = ", ".join(f"'{w}'" for w in WORDS)
    return (
        "CREATE TABLE bench_phrases AS SELECT p AS id, string_agg(w.a[1 + floor(random() * "
        f"{len(WORDS)})::int], ' ') AS t FROM (SELECT ARRAY[{words}] AS a) w, "
        "generate_series(0, 9999) p, generate_series(1, 8) k GROUP BY p;\n"
        "ALTER TABLE bench_phrases ADD PRIMARY KEY (id);\n"
    )


def orders_sql(table: str, rows: int) -> str:
    """A table of `rows` orders (text, numbers, timestamps), autovacuum off (the benchmark
    decides when it is vacuumed), primary key built after the load."""
    return f"""
CREATE TABLE {table} (id bigint NOT NULL, customer_id int NOT NULL, amount numeric(12,2) NOT NULL,
  status text NOT NULL, created_at timestamptz NOT NULL, ref text NOT NULL, note text NOT NULL)
  WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
INSERT INTO {table}
SELECT s.g, (random() * 100000)::int, round((random() * 5000)::numeric, 2),
       (ARRAY['new','paid','shipped','returned','cancelled'])[1 + s.g % 5],
       timestamptz '2025-01-01' + s.g * interval '2 second' + random() * interval '1 hour',
       md5(s.g::text), p1.t || ' ' || p2.t
FROM (SELECT g, floor(random() * 10000)::int AS a, floor(random() * 10000)::int AS b
      FROM generate_series(1, {rows}) g) s
JOIN bench_phrases p1 ON p1.id = s.a JOIN bench_phrases p2 ON p2.id = s.b;
ALTER TABLE {table} ADD PRIMARY KEY (id);
"""


def create_big(lab: Lab, scale: Scale) -> None:
    lab.psql(f"CREATE DATABASE {BIG}; CREATE DATABASE {EMPTY};")
    lab.psql(phrases_sql() + orders_sql("orders", scale.big_rows) + orders_sql("returns", 20000)
             + "VACUUM (FREEZE, ANALYZE);", BIG)  # fmt: skip
    lab.psql("CREATE TABLE settings (k text PRIMARY KEY, v text); VACUUM (FREEZE, ANALYZE);", EMPTY)


def create_vacuum_template(lab: Lab, scale: Scale) -> None:
    """10 tables vacuumed (frozen, analyzed), then 3 get half their rows updated (heavily
    bloated) and 7 one row in a hundred (lightly changed since their last vacuum)."""
    lab.psql(f"CREATE DATABASE {VACUUM_TPL};")
    sql = phrases_sql() + "".join(orders_sql(t, scale.vacuum_rows) for t in BLOATED + CALM)
    lab.psql(sql + "DROP TABLE bench_phrases; VACUUM (FREEZE, ANALYZE);", VACUUM_TPL)
    changes = [f"UPDATE {t} SET amount = amount + 1 WHERE id % 2 = 0;" for t in BLOATED]
    changes += [f"UPDATE {t} SET amount = amount + 1 WHERE id % 100 = 7;" for t in CALM]
    lab.psql("\n".join(changes), VACUUM_TPL)
    # a template: no procedure lists it, no gate asks for its backup
    lab.psql(f"ALTER DATABASE {VACUUM_TPL} IS_TEMPLATE true;")


def create_reindex_template(lab: Lab, scale: Scale) -> None:
    """One table with a compact primary key and 3 secondary indexes left with 70 % of their
    entries deleted (each page ~30 % full after VACUUM)."""
    lab.psql(f"CREATE DATABASE {REINDEX_TPL};")
    lab.psql(
        f"""
CREATE TABLE events (id bigint PRIMARY KEY, a int NOT NULL, b int NOT NULL,
  at timestamptz NOT NULL, pad text NOT NULL)
  WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
INSERT INTO events SELECT g, (random() * 1e6)::int, (random() * 1e6)::int,
  timestamptz '2025-01-01' + g * interval '1 second', md5(g::text)
  FROM generate_series(1, {scale.reindex_rows}) g;
CREATE INDEX events_a ON events (a);
CREATE INDEX events_b ON events (b);
CREATE INDEX events_at ON events (at);
DELETE FROM events WHERE id % 10 >= 3;
VACUUM events;
REINDEX INDEX events_pkey;
ANALYZE events;
""",
        REINDEX_TPL,
    )
    lab.psql(f"ALTER DATABASE {REINDEX_TPL} IS_TEMPLATE true;")


def fresh_copy(lab: Lab, template: str, database: str, analyze: bool) -> None:
    """database as a file copy of template; analyzed when asked (the copy starts with no
    pg_stat_user_tables counts: ANALYZE sets its live and dead tuples from a sample)."""
    lab.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE);")
    lab.psql(f"CREATE DATABASE {database} TEMPLATE {template} STRATEGY FILE_COPY;")
    if analyze:
        lab.psql("ANALYZE;", database)


def snapshot(lab: Lab) -> dict:
    """What the backups leave besides their own directories: the backup directory's entries
    and the metrics textfile (None when absent), to put back at the end."""
    listing = lab.sh(f"ls -A {BACKUP_DIR} 2>/dev/null || true", user="root").split()
    metrics = lab.sh(f"cat {METRICS} 2>/dev/null || echo __absent__", user="root")
    return {"backups": set(listing), "metrics": None if metrics == "__absent__\n" else metrics}


def drop_all(lab: Lab, before: dict) -> None:
    """Drop every bench_* database of this benchmark, its backups and the plain dump; the
    _globals dump only when the benchmark created it; the metrics textfile as it was."""
    backups_before = before["backups"]
    names = ", ".join(f"'{d}'" for d in DATABASES)
    lab.psql(
        "SELECT format('ALTER DATABASE %I IS_TEMPLATE false', datname) FROM pg_database "
        f"WHERE datistemplate AND datname IN ({names}) \\gexec"
    )
    for database in DATABASES:
        lab.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE);")
    lab.psql(
        "SELECT 'DROP DATABASE ' || quote_ident(datname) || ' WITH (FORCE);' FROM pg_database "
        "WHERE datname LIKE 'opsplay\\_restore\\_test\\_bench\\_%' \\gexec"
    )
    dirs = " ".join(shlex.quote(f"{BACKUP_DIR}/{d}") for d in DATABASES)
    extra = "" if "_globals" in backups_before else f" {BACKUP_DIR}/_globals"
    if not backups_before:  # the directory did not exist: nothing else of ours lives there
        extra += f" {BACKUP_DIR}"
    lab.sh(f"rm -rf {dirs}{extra} {DUMP_FILE}", user="root")
    if before["metrics"] is None:
        lab.sh(f"rm -f {METRICS}", user="root")
    else:
        lab.write(METRICS, before["metrics"])


# --- measures ---------------------------------------------------------------------------------


def measure_backup(lab: Lab, reps: int, level: str, flag: str) -> dict:
    only = {"pg_backup_databases": [BIG]}
    lab.opsplay("backup", only)  # unmeasured: later runs have a previous backup, as nightly
    mine, plain = [], []
    for _ in range(reps):
        plain.append(lab.timed_sh(f"pg_dump -Fc {flag} -f {DUMP_FILE} {BIG}"))
        mine.append(lab.opsplay("backup", only))
        say(f"backup     opsplay {mine[-1]:7.2f} s   pg_dump -Fc {flag} {plain[-1]:7.2f} s")
    empty = {"pg_backup_databases": [EMPTY]}
    lab.opsplay("backup", empty)
    fixed = []
    for _ in range(reps):
        fixed.append(lab.opsplay("backup", empty))
        say(f"backup     opsplay, empty database {fixed[-1]:.2f} s")
    size = int(lab.psql(f"SELECT pg_database_size('{BIG}')"))
    dump = int(lab.sh(f"stat -c %s {DUMP_FILE}").strip())
    return {"opsplay": mine, "plain": plain, "empty": fixed, "level": level,
            "database_bytes": size, "dump_bytes": dump}  # fmt: skip


def measure_restore(lab: Lab, reps: int) -> dict:
    extra = {"pg_backup_restore_test_databases": [BIG]}
    plain_restore = (
        f"createdb {RESTORED} && pg_restore -d {RESTORED} {DUMP_FILE} && dropdb {RESTORED}"
    )
    mine, plain = [], []
    for _ in range(reps):
        mine.append(lab.opsplay("restore-test", extra))
        plain.append(lab.timed_sh(plain_restore))
        say(f"restore    opsplay {mine[-1]:7.2f} s   createdb+pg_restore+dropdb {plain[-1]:7.2f} s")
    return {"opsplay": mine, "plain": plain}


def measure_vacuum(lab: Lab, reps: int) -> dict:
    extra = {"pg_maintenance_databases": [VACUUM_DB]}
    mine, plain, chosen = [], [], []
    for _ in range(reps):
        fresh_copy(lab, VACUUM_TPL, VACUUM_DB, analyze=True)
        mine.append(lab.opsplay("vacuum", extra))
        chosen = lab.psql(
            "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_stat_user_tables "
            "WHERE last_vacuum IS NOT NULL",
            VACUUM_DB,
        ).split(",")
        fresh_copy(lab, VACUUM_TPL, VACUUM_DB, analyze=True)
        session = Session(lab, VACUUM_DB)
        plain.append(session.run("VACUUM ANALYZE;"))
        session.close()
        say(f"vacuum     opsplay {mine[-1]:7.2f} s ({','.join(chosen)})   "
            f"VACUUM ANALYZE {plain[-1]:7.2f} s")  # fmt: skip
    lab.psql(f"DROP DATABASE IF EXISTS {VACUUM_DB} WITH (FORCE);")
    nothing = {"pg_maintenance_databases": [EMPTY]}
    idle = []
    for _ in range(reps):
        idle.append(lab.opsplay("vacuum", nothing))
        say(f"vacuum     opsplay, nothing to do {idle[-1]:.2f} s")
    return {"opsplay": mine, "plain": plain, "nothing": idle, "vacuumed": chosen,
            "bytes": int(lab.psql(f"SELECT pg_database_size('{VACUUM_TPL}')"))}  # fmt: skip


class LockWatcher:
    """A thread that asks one psql session in `database`, every ~20 ms, which locks stronger
    than SHARE UPDATE EXCLUSIVE are granted on its user relations (oid >= 16384: tables and
    indexes it can see in pg_class, live ones; the index a concurrent rebuild creates, before its
    transaction commits, and the dead one it drops, are invisible to other sessions or skipped by
    their plans, so no query waits for them; temporary relations, private to the session that
    made them, do not count); each sample is (monotonic time, 'name:mode ...' or
    ''). Each sample is its own short transaction, which REINDEX CONCURRENTLY does not wait
    for beyond the sample."""

    def __init__(self, lab: Lab, database: str, interval: float = 0.02) -> None:
        modes = ", ".join(f"'{m}'" for m in STRONG_LOCKS)
        self.query = (
            "SELECT coalesce(string_agg(DISTINCT c.relname || ':' "
            "|| l.mode, ' '), '') FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "LEFT JOIN pg_index i ON i.indexrelid = l.relation "
            f"WHERE l.granted AND l.relation >= 16384 AND l.mode IN ({modes}) AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND c.relpersistence <> 't' AND coalesce(i.indislive, true);\n"
        )
        self.interval = interval
        self.samples: list[tuple[float, str]] = []
        self.stop = threading.Event()
        cmd = ["podman", "exec", "-i", "-u", "postgres", lab.host, "psql", "-X", "-q", "-At",
               "-d", database]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.samples and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # the session is up before the run starts
        if not self.samples:
            self.close()
            raise BenchError(f"{lab.host}: the pg_locks watcher's psql session did not answer")

    def _run(self) -> None:
        assert self.proc.stdin and self.proc.stdout
        while not self.stop.is_set():
            self.proc.stdin.write(self.query)
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                return
            self.samples.append((time.monotonic(), line.strip()))
            self.stop.wait(self.interval)

    def close(self) -> list[tuple[float, str]]:
        self.stop.set()
        self.thread.join()
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()
        return self.samples


def watched(lab: Lab, run: Callable[[], object]) -> tuple[float, float | None, set[str]]:
    """Seconds of run(), the share of its samples with a strong lock, and the relation:mode
    pairs seen."""
    watcher = LockWatcher(lab, REINDEX_DB)
    try:
        start = time.monotonic()
        run()
        end = time.monotonic()
    finally:
        samples = watcher.close()
    modes = {m for t, held in samples if start <= t <= end for m in held.split()}
    return end - start, lock_share(samples, start, end), modes


def measure_reindex(lab: Lab, reps: int) -> dict:
    extra = {"pg_maintenance_databases": [REINDEX_DB]}
    rows: dict[str, list] = {"opsplay": [], "plain": [], "share_opsplay": [], "share_plain": []}
    modes: dict[str, set[str]] = {"opsplay": set(), "plain": set()}
    # reindex's backup gate wants a recent verified backup of every database of the server
    # (a new lab has none): one of each, bench_reindex included (the copies made below keep its
    # directory, so the gate passes)
    fresh_copy(lab, REINDEX_TPL, REINDEX_DB, analyze=False)
    every = lab.psql("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate;")
    lab.opsplay("backup", {"pg_backup_databases": every.split()})
    for _ in range(reps):
        fresh_copy(lab, REINDEX_TPL, REINDEX_DB, analyze=False)
        took, share, seen = watched(lab, lambda: lab.opsplay("reindex", extra))
        rows["opsplay"].append(took)
        rows["share_opsplay"].append(share)
        modes["opsplay"] |= seen
        fresh_copy(lab, REINDEX_TPL, REINDEX_DB, analyze=False)
        session = Session(lab, REINDEX_DB)
        took, share, seen = watched(lab, partial(session.run, "REINDEX TABLE events;"))
        session.close()
        rows["plain"].append(took)
        rows["share_plain"].append(share)
        modes["plain"] |= seen
        say(f"reindex    opsplay {rows['opsplay'][-1]:7.2f} s (strong locks "
            f"{pct(rows['share_opsplay'][-1])})   REINDEX TABLE {took:7.2f} s (strong locks "
            f"{pct(share)})")  # fmt: skip
    lab.psql(f"DROP DATABASE IF EXISTS {REINDEX_DB} WITH (FORCE);")
    return {**rows, "modes": {k: sorted(v) for k, v in modes.items()}}


def pct(share: float | None) -> str:
    if share is None:
        return "no sample"
    return f"{share * 100:.2f} %" if 0 < share < 0.01 else f"{share * 100:.0f} %"


def say(line: str) -> None:
    print(line, flush=True)


# --- report -----------------------------------------------------------------------------------


MEASURES = ("backup", "restore-test", "vacuum", "reindex")


def table_rows(results: dict, scale: Scale) -> list[dict]:
    """The rows of the measures results holds (all of them unless --only)."""
    rows: list[dict] = []
    if "backup" in results:
        b = results["backup"]
        rows += [
            ratio_row(f"backup / pg_dump -Fc {b['level']} ({b['database_bytes'] / 1e9:.2f} GB, "
                      f"archive {b['dump_bytes'] / 1e9:.2f} GB)", median(b["opsplay"]),
                      median(b["plain"]), 1.15),
            fixed_row("backup of an empty database", median(b["empty"]), 3),
        ]  # fmt: skip
    if "restore" in results:
        r = results["restore"]
        rows.append(ratio_row("restore-test / createdb+pg_restore+dropdb", median(r["opsplay"]),
                              median(r["plain"]), 1.05))  # fmt: skip
    if "vacuum" in results:
        v = results["vacuum"]
        rows += [
            ratio_row(f"vacuum targeted / VACUUM ANALYZE ({v['bytes'] / 1e9:.2f} GB, 10 tables)",
                      median(v["opsplay"]), median(v["plain"]), 0.3),
            fixed_row("vacuum with nothing to do", median(v["nothing"]), 2),
        ]  # fmt: skip
    if "reindex" in results:
        rows += reindex_rows(results["reindex"])
    if scale.min_dump_seconds and "backup" in results:
        plain_dump = median(results["backup"]["plain"])
        rows.append(
            {"measure": "condition: plain dump takes at least 30 s", "plain": seconds(plain_dump),
             "target": f">= {scale.min_dump_seconds:g} s",
             "result": "met" if plain_dump >= scale.min_dump_seconds else "not met"}
        )  # fmt: skip
    return rows


def reindex_rows(x: dict) -> list[dict]:
    total = ratio_row("reindex total / REINDEX TABLE", median(x["opsplay"]),
                      median(x["plain"]), 0)  # fmt: skip
    total.update(target="-", result="-")
    shares = [s for s in x["share_opsplay"] if s is not None]
    worst = max(shares) if len(shares) == len(x["share_opsplay"]) else None
    plain_shares = [s for s in x["share_plain"] if s is not None]
    return [
        total,
        {"measure": "reindex: time under a lock > SHARE UPDATE EXCLUSIVE (worst run)",
         "opsplay": pct(worst), "plain": pct(median(plain_shares) if plain_shares else None),
         "target": "0 %", "result": "met" if worst == 0 else "not met"},
    ]  # fmt: skip


def measures(text: str) -> tuple[str, ...]:
    """--only's comma-separated measures, checked; restore-test brings backup (its dump)."""
    wanted = {m.strip() for m in text.split(",") if m.strip()}
    unknown = sorted(wanted - set(MEASURES))
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(
            f"unknown measure {', '.join(unknown) or '(none)'}: choose from {', '.join(MEASURES)}"
        )
    if "restore-test" in wanted:
        wanted.add("backup")
    return tuple(m for m in MEASURES if m in wanted)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--inventory-dir",
        type=Path,
        default=Path(os.environ.get("OPSPLAY_INVENTORY_DIR", REPO / "inventories")),
        help="opsplay's inventory directory (default $OPSPLAY_INVENTORY_DIR, else inventories/)",
    )
    parser.add_argument("--env", default="lab", help="environment (default lab)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--reps", type=int, default=3, help="runs per measure (median)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument(
        "--only",
        type=measures,
        default=MEASURES,
        help=f"comma-separated measures to run (default all: {','.join(MEASURES)})",
    )
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def role_compression() -> tuple[str, int]:
    """roles/pg_backup's default compression method and level (what `opsplay run backup` uses)."""
    import yaml

    defaults = yaml.safe_load((REPO / "roles/pg_backup/defaults/main.yml").read_text())
    return defaults["pg_backup_compress_method"], int(defaults["pg_backup_compress_level"])


def run(args: argparse.Namespace, work: Path) -> dict:
    scale = SCALES[args.scale]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPSPLAY_", "ANSIBLE_"))}
    if not args.inventory_dir.is_dir():
        raise BenchError(f"no lab: inventory directory {args.inventory_dir} does not exist", 2)
    host = find_host(args.inventory_dir, args.env, base)
    lab = Lab(args.inventory_dir, args.env, host, work / "state")
    check_lab(lab, need_gb=8 * scale.big_rows * 210 / 1e9 + 4 * scale.vacuum_rows * 2100 / 1e9)
    method, level = role_compression()
    flag = compress_flag(method, level)
    before = snapshot(lab)
    say(f"{host} ({args.env}), scale {args.scale}, median of {args.reps}; creating data ...")
    only = args.only
    results: dict = {"host": host, "env": args.env, "scale": args.scale, "reps": args.reps,
                     "sizes": vars(scale), "measures": list(only),
                     "load_start": os.getloadavg()}  # fmt: skip
    try:
        drop_all(lab, before)  # leftovers of an interrupted earlier run
        started = time.perf_counter()
        if "backup" in only:
            create_big(lab, scale)
        if "vacuum" in only:
            create_vacuum_template(lab, scale)
        if "reindex" in only:
            create_reindex_template(lab, scale)
        say(f"data created in {time.perf_counter() - started:.0f} s")
        if "backup" in only:
            results["backup"] = measure_backup(lab, args.reps, f"{method}:{level}", flag)
        if "restore-test" in only:
            results["restore"] = measure_restore(lab, args.reps)
        if "vacuum" in only:
            results["vacuum"] = measure_vacuum(lab, args.reps)
        if "reindex" in only:
            results["reindex"] = measure_reindex(lab, args.reps)
        results["load_end"] = os.getloadavg()
    finally:
        drop_all(lab, before)
    return results


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too drops the bench_* databases on the way out


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    work = Path(tempfile.mkdtemp(prefix="opsplay-bench-pg-"))
    try:
        results = run(args, work)
    except BenchError as err:
        print(f"benchmark: {err}", file=sys.stderr)
        sys.exit(err.code)
    except KeyboardInterrupt:
        print("benchmark: interrupted (bench_* databases dropped)", file=sys.stderr)
        sys.exit(130)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    rows = table_rows(results, SCALES[args.scale])
    results["table"] = rows
    say(f"\nPostgreSQL procedures on {results['host']} ({results['env']}), scale "
        f"{results['scale']}, median of {results['reps']} runs:\n")  # fmt: skip
    say(format_table(rows))
    if "reindex" in results:
        modes = results["reindex"]["modes"]
        say(f"\nstrong locks sampled (relation:mode): opsplay {modes['opsplay'] or 'none'}, "
            f"REINDEX TABLE {modes['plain'] or 'none'}")  # fmt: skip
    if "vacuum" in results:
        say(f"vacuum: opsplay vacuumed {', '.join(results['vacuum']['vacuumed'])}")
    say(f"load (uptime): {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
        f"{os.getloadavg()[2]:.2f}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"pg-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    say(f"wrote {path}")


if __name__ == "__main__":
    main()
