"""The pg_maintenance run report on the control node: the whole run's document (every host's
report under the run's header), its file names, its JSON and Markdown text (what the role's
templates json.j2 and md.j2 wrote, byte for byte), the atomic write of both files, and the
judgement of one host (``conclude``: what the role's last task returns, used by the action plugin
plugins/action/pg_maintenance_report.py and by the module of the same name)."""

from __future__ import annotations

import json
import os
import tempfile

from ansible.module_utils.common.text.formatters import bytes_to_human


def run_report(results: list, env: str) -> dict:
    """The run's document: the first result's header, the environment, every host's report."""
    return dict(results[0]["run"], env=env, hosts=[r["report"] for r in results])


def base_path(directory: str, env: str, run: dict) -> str:
    """DIR/ENV/YYYYmmddTHHMMSSZ-ACTION[-check], without extension."""
    stamp = run["time"].replace("-", "").replace(":", "")
    check = "-check" if run["check"] else ""
    return os.path.join(directory.strip(), env, "%s-%s%s" % (stamp, run["action"], check))


def to_json(report: dict) -> str:
    """As Ansible's to_nice_json(indent=2) wrote it, with the template's final newline."""
    return json.dumps(report, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def cell(value, human: bool) -> str:
    if human and isinstance(value, (int, float)):
        return bytes_to_human(value)
    if value is None:
        return "-"
    return str(value).replace("|", "\\|")


def table(rows: list, columns: list) -> str:
    """A Markdown table of ``rows``; columns are (title, key[, "bytes"]). "none\\n" if empty."""
    if not rows:
        return "none\n"
    lines = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + "".join(cell(row[c[1]], len(c) > 2) + " | " for c in columns))
    return "\n".join(lines) + "\n"


def names(items: list) -> list:
    return [item["name"] for item in items]


def planned(db: dict, key: str) -> list:
    """The names selected under ``key`` that were not left unstarted by the window's end."""
    left = db["actions"].get("not_started") or []
    return [name for name in names(db[key]) if name not in left]


def action_lines(run: dict, db: dict) -> str:
    """What was done in one database (or would be, in check mode)."""
    a, check = db["actions"], run["check"]
    out = ""
    if run["action"] == "vacuum":
        done = planned(db, "vacuum") if check else a["vacuumed"]
        out += "- %s: %s\n" % (
            "Would vacuum" if check else "Vacuumed",
            ", ".join(done) or "nothing",
        )
        if a["vacuum_skipped_locked"]:
            out += "- Skipped, locked by another session: %s\n" % ", ".join(
                a["vacuum_skipped_locked"]
            )
    elif run["action"] == "reindex":
        done = planned(db, "reindex") if check else a["reindexed"]
        out += "- %s: %s\n" % (
            "Would rebuild" if check else "Rebuilt",
            ", ".join(done) or "nothing",
        )
        if a["reindex_failed"]:
            out += "- Rebuild failed: %s\n" % ", ".join(a["reindex_failed"])
        dropped = names(db["leftovers"]) if check else a["dropped_invalid"]
        out += "- %s invalid indexes of failed rebuilds: %s\n" % (
            "Would drop" if check else "Dropped",
            ", ".join(dropped) or "none",
        )
    if a.get("not_started"):
        out += "- Not started, the window ended at %s: %s\n" % (
            run.get("stop_at"),
            ", ".join(a["not_started"]),
        )
    if db["invalid_indexes"]:
        out += "- Other invalid indexes (left alone): %s\n" % ", ".join(db["invalid_indexes"])
    return out


SECTIONS = (
    ("Tables over the vacuum thresholds", "vacuum",
     [("table", "name"), ("reason", "reason"), ("dead tuples", "n_dead_tup"),
      ("dead ratio", "dead_ratio"), ("modified since analyze", "n_mod_since_analyze"),
      ("VACUUM FULL", "vacuum_full")]),
    ("Indexes over the bloat threshold", "reindex",
     [("index", "name"), ("table", "table"), ("size", "bytes", "bytes"),
      ("estimated bloat", "bloat_ratio")]),
    ("Largest tables", "largest_tables",
     [("table", "name"), ("total size", "total_bytes", "bytes"), ("live tuples", "n_live_tup"),
      ("dead tuples", "n_dead_tup"), ("last vacuum", "last_vacuum"),
      ("last autovacuum", "last_autovacuum"), ("last analyze", "last_analyze")]),
    ("Dead tuples", "dead_tuples",
     [("table", "name"), ("dead tuples", "n_dead_tup"), ("live tuples", "n_live_tup"),
      ("dead ratio", "dead_ratio")]),
    ("Index bloat estimate (btree)", "index_bloat",
     [("index", "name"), ("table", "table"), ("size", "bytes", "bytes"),
      ("estimated bloat", "bloat_ratio"), ("bloat", "bloat_bytes", "bytes")]),
)  # fmt: skip
UNUSED = [("index", "name"), ("table", "table"), ("size", "bytes", "bytes")]
SLOW = [("mean ms", "mean_ms"), ("calls", "calls"), ("total ms", "total_ms"), ("rows", "rows"),
        ("query", "query")]  # fmt: skip
BLOCKED = [("pid", "pid"), ("user", "usename"), ("database", "datname"),
           ("blocked by", "blocked_by"), ("waiting (s)", "seconds"),
           ("query", "query")]  # fmt: skip
BLOCKING = [("pid", "pid"), ("user", "usename"), ("database", "datname"), ("state", "state"),
            ("transaction (s)", "xact_seconds"), ("query", "query")]  # fmt: skip


def database_md(run: dict, db: dict) -> str:
    out = "### Database %s (%s)\n\n" % (db["database"], bytes_to_human(db["size_bytes"]))
    out += action_lines(run, db) + "\n"
    for title, key, columns in SECTIONS:
        out += "#### %s\n\n%s\n" % (title, table(db[key], columns))
    since = db["stats_reset"] or "the statistics were created"
    out += "#### Unused indexes (no scan since %s; unique and primary excluded)\n\n" % since
    out += table(db["unused_indexes"], UNUSED) + "\n"
    out += "#### Slowest queries (pg_stat_statements)\n\n"
    slow = db["slow_queries"]
    if slow is None:
        return out + "pg_stat_statements is not installed in this database.\n"
    if isinstance(slow, dict):
        return out + "pg_stat_statements is not usable: %s\n" % slow["error"]
    return out + table(slow, SLOW)


def markdown(run: dict) -> str:
    """The run's Markdown report."""
    t = run["thresholds"]
    check = ", **check mode: nothing was changed**, the actions are what a real run would do"
    out = "# PostgreSQL %s report: %s, %s\n\n" % (run["action"], run["env"], run["time"])
    out += "Mode **%s**%s.\n" % (run["mode"], check if run["check"] else "")
    out += (
        "Thresholds: vacuum when dead tuples >= %s of the rows (at least\n"
        "%s) or rows modified since analyze >= %s\n"
        "(at least %s); rebuild btree indexes with estimated bloat >=\n"
        "%s and size >= %s.\n"
    ) % (
        t["vacuum_dead_ratio"],
        t["vacuum_min_dead_tuples"],
        t["analyze_mod_ratio"],
        t["analyze_min_modifications"],
        t["reindex_bloat_ratio"],
        bytes_to_human(t["reindex_min_bytes"]),
    )
    for host in run["hosts"]:
        server = host["server"]
        out += "\n## %s\n\nPostgreSQL %s.\n\n" % (host["host"], server["version"])
        out += "### Blocked sessions\n\n%s\n" % table(server["blocked"], BLOCKED)
        out += "### Blocking sessions\n\n%s\n" % table(server["blocking"], BLOCKING)
        out += "".join(database_md(run, db) for db in host["databases"])
    return out


def write_atomic(path: str, text: str) -> None:
    """``path`` holds ``text`` (0600) or what it held before: temporary file, fsync, rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save(directory: str, env: str, run: dict) -> list:
    """Write the run's JSON and Markdown report (directory created 0700); their paths."""
    base = base_path(directory, env, run)
    os.makedirs(os.path.dirname(base), mode=0o700, exist_ok=True)
    paths = [base + ".json", base + ".md"]
    write_atomic(paths[0], to_json(run))
    write_atomic(paths[1], markdown(run))
    return paths


# The options of the role's last task (module and action plugin pg_maintenance_report).
ARGUMENT_SPEC = {
    "results": {"type": "list", "elements": "dict", "required": True},
    "host": {"type": "str", "required": True},
    "env": {"type": "str", "required": True},
    "directory": {"type": "path", "required": True},
}


def own_result(results: list, host: str) -> dict:
    """This host's result among the run's (an empty one when it has none)."""
    for result in results:
        if result["report"]["host"] == host:
            return result
    return {"failures": [], "msg": "no report of %s" % host}


def conclude(results: list, host: str, env: str, directory: str) -> dict:
    """The result of the role's last task for ``host``: the run's report, written once (by the
    first host with a report), then ``failed`` with this host's failures, else its summary."""
    run = run_report(results, env) if results else None
    paths: list = []
    if run is not None and results[0]["report"]["host"] == host:
        try:
            paths = save(directory, env, run)
        except OSError as exc:
            msg = "cannot write the report under %s: %s" % (directory, exc.strerror or exc)
            return {"failed": True, "changed": False, "msg": msg}
    mine = own_result(results, host)
    out = {"changed": False, "report": run, "paths": paths, "msg": mine["msg"]}
    if mine["failures"]:
        out.update(failed=True, msg="; ".join(mine["failures"]))
    return out
