#!/usr/bin/python3
"""Ansible module of roles/preflight: measure the gates before a risky step and pass or refuse.

Read-only (also under --check). Measures the newest verified backup of every backup set (the
server's databases, the declared ones, and every directory under backup_dir, ``_globals``
included: plugins/module_utils/backup_manifest's rule) and the free space of the declared paths,
judges them and the activity the role's query measured, and fails the host once naming every
gate that refused (``refused STEP: gate backup: ...; gate disk: ...``). With ``backup_take`` a
refusal by the backup gate does not fail: the result says ``backup_refused`` so that the role
takes a backup and calls the module again.
"""

from __future__ import annotations

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import backup_manifest, disk_usage
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import age_seconds, now

KNOWN_GATES = ("backup", "disk", "activity")

# The server's databases, its oldest open transaction and its lock queue, one JSON object.
SERVER_QUERY = """SELECT json_build_object(
  'databases', (SELECT coalesce(json_agg(datname::text ORDER BY datname), '[]'::json)
                FROM pg_database WHERE NOT datistemplate AND datallowconn),
  'oldest_xact_seconds', coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::int,
  'oldest_xact_pid', (array_agg(pid ORDER BY xact_start))[1],
  'lock_waiters', (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock')::int)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"""


def server_command(postgres, euid):
    """psql running SERVER_QUERY over the unix socket as postgres["become_user"] (peer
    authentication): through runuser when the module runs as root (to read the backups)."""
    psql = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    psql += ["-h", postgres["unix_socket"], "-p", str(postgres["port"]), "-d", "postgres"]
    psql += ["-c", SERVER_QUERY]
    if euid == 0:
        return ["runuser", "-u", postgres["become_user"], "--", *psql]
    return psql


def measure_server(run, postgres, euid):
    """(server, error): the query's {databases, oldest_xact_seconds, oldest_xact_pid,
    lock_waiters}, else the one line saying why there is none; run(argv) -> (rc, out, err)."""
    rc, out, err = run(server_command(postgres, euid))
    if rc != 0:
        reason = " ".join((err or out or "exit %d" % rc).split())
        return None, "cannot measure PostgreSQL on %s:%s: %s" % (
            postgres["unix_socket"],
            postgres["port"],
            reason,
        )
    try:
        server = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "cannot measure PostgreSQL: psql answered %r" % out.strip()[:200]
    return server, None


def duration(seconds):
    """'45 s', '90 min', '26 h', '30.5 h': how the messages say an age."""
    seconds = int(seconds)
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    return ("%.1f" % (seconds / 3600.0)).rstrip("0").rstrip(".") + " h"


def unknown_gates(gates):
    """One line naming the unknown gates, or ''."""
    unknown = [g for g in gates if g not in KNOWN_GATES]
    if not unknown:
        return ""
    return "preflight_gates: unknown gate(s) %s (known: %s)" % (
        ", ".join(unknown),
        ", ".join(KNOWN_GATES),
    )


def measure_backups(backup_dir, databases, at):
    """({set: {name, age_seconds} or None}, error or None): every declared database and every
    set with a directory under backup_dir, by backup_manifest's rule."""
    try:
        sets = set(databases) | set(backup_manifest.backup_sets(backup_dir))
        newest = backup_manifest.newest_verified(backup_manifest.manifests(backup_dir))
    except OSError as exc:
        return {}, "%s: %s" % (exc.filename or backup_dir, exc.strerror or exc)
    found = {}
    for name in sorted(sets):
        good = newest.get(name)
        found[name] = (
            {"name": good["name"], "age_seconds": age_seconds(good["ended"], at)} if good else None
        )
    return found, None


def measure_disk(paths):
    result = []
    for item in paths:
        path = item["path"]
        try:
            free = disk_usage.usage(path)["free_mib"]
        except OSError as exc:
            result.append({"path": path, "error": exc.strerror or str(exc)})
            continue
        result.append({"path": path, "free_mb": free, "min_free_mb": int(item["min_free_mb"])})
    return result


def backup_problems(found, error, backup_dir, max_age):
    if error:
        return ["gate backup: cannot read %s" % error]
    if not found:
        return ["gate backup: no verified backup in %s" % backup_dir]
    out = []
    for name, newest in sorted(found.items()):
        if newest is None:
            out.append("gate backup: %s has no verified backup" % name)
        elif newest["age_seconds"] > max_age:
            out.append(
                "gate backup: %s newest verified backup %s is %s old (max %s)"
                % (name, newest["name"], duration(newest["age_seconds"]), duration(max_age))
            )
    return out


def disk_problems(measured):
    out = []
    for d in measured:
        if "error" in d:
            out.append("gate disk: %s: %s" % (d["path"], d["error"]))
        elif d["free_mb"] < d["min_free_mb"]:
            out.append(
                "gate disk: %s has %d MiB free, needs %d"
                % (d["path"], d["free_mb"], d["min_free_mb"])
            )
    return out


def activity_problems(activity, max_age, max_waiters):
    out = []
    oldest = int(activity.get("oldest_xact_seconds") or 0)
    waiters = int(activity.get("lock_waiters") or 0)
    if oldest > max_age:
        out.append(
            "gate activity: a transaction has been open %d s (pid %s, max %d s)"
            % (oldest, activity.get("oldest_xact_pid"), max_age)
        )
    if waiters > max_waiters:
        out.append("gate activity: %d sessions wait on locks (max %d)" % (waiters, max_waiters))
    return out


def judge(p, at):
    """The module's result (without changed/failed) for parameters p at time at."""
    gates = p["gates"]
    result = {"backups": {}, "disk": [], "problems": []}
    if "backup" in gates and p["db_host"]:
        found, error = measure_backups(p["backup_dir"], p["databases"], at)
        result["backups"] = found
        result["problems"] += backup_problems(found, error, p["backup_dir"], p["backup_max_age"])
    if "disk" in gates:
        result["disk"] = measure_disk(p["disk"])
        result["problems"] += disk_problems(result["disk"])
    if "activity" in gates and p["db_host"] and p["activity"]:
        result["problems"] += activity_problems(
            p["activity"], p["max_transaction_age"], p["max_lock_waiters"]
        )
    result["backup_refused"] = any(x.startswith("gate backup") for x in result["problems"])
    if result["problems"]:
        result["msg"] = "refused %s: %s" % (p["step"], "; ".join(result["problems"]))
    else:
        result["msg"] = "gates passed for %s: %s" % (p["step"], ", ".join(gates))
    return result


def fails(result, backup_take):
    """Whether the host fails now: on any refusal, unless the backup gate refused and
    backup_take lets the role take a backup and call again (which then judges every gate)."""
    return bool(result["problems"]) and not (backup_take and result["backup_refused"])


def main():
    module = AnsibleModule(
        argument_spec={
            "gates": {"type": "list", "elements": "str", "default": list(KNOWN_GATES)},
            "step": {"type": "str", "default": "the maintenance step"},
            "db_host": {"type": "bool", "default": False},
            "backup_dir": {"type": "str", "default": "/var/backups/postgresql"},
            "databases": {"type": "list", "elements": "str", "default": []},
            "backup_max_age": {"type": "int", "default": 93600},
            "backup_take": {"type": "bool", "default": False},
            "disk": {"type": "list", "elements": "dict", "default": []},
            "activity": {"type": "dict"},
            "postgres": {
                "type": "dict",
                "options": {
                    "unix_socket": {"type": "str", "default": "/var/run/postgresql"},
                    "port": {"type": "int", "default": 5432},
                    "become_user": {"type": "str", "default": "postgres"},
                },
            },
            "max_transaction_age": {"type": "int", "default": 300},
            "max_lock_waiters": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    problem = unknown_gates(module.params["gates"])
    if problem:
        module.fail_json(msg=problem)
    params = module.params
    wanted = set(params["gates"]) & {"backup", "activity"}
    if params["postgres"] and params["db_host"] and wanted:
        server, error = measure_server(
            lambda argv: module.run_command(argv, cwd="/"), params["postgres"], os.geteuid()
        )
        if error:
            module.fail_json(msg=error)
        params = dict(params, activity=server, databases=params["databases"] + server["databases"])
    result = judge(params, now())
    if fails(result, module.params["backup_take"]):
        module.fail_json(**result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
