#!/usr/bin/env python3
# Managed by the opsplay `health` role: read-only probe of disk, memory and PostgreSQL.
#
# Usage: health_probe.py JSON, JSON = {"disk_paths": [...], "disk_max_percent": N,
#   "memory_max_percent": N, "postgres": {"host": H, "port": P} or null}
# Prints one JSON document: {"problems": [str], "summary": [str], "disk": [...],
#   "memory_percent": N, "postgres": {"ready": bool, "message": str} or null}
"""Measure what the health role checks, in one remote call."""

import json
import math
import os
import subprocess
import sys


def disk(path):
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return {"path": path, "error": exc.strerror or str(exc)}
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    # Same figure as df's Use%: used / (used + available to unprivileged users), rounded up.
    percent = math.ceil(100 * used / (used + avail)) if used + avail else 0
    return {"path": path, "percent": percent}


def memory_percent():
    info = {}
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0])
    total, available = info["MemTotal"], info["MemAvailable"]
    return math.ceil(100 * (total - available) / total) if total else 0


def postgres(host, port):
    try:
        proc = subprocess.run(
            ["pg_isready", "--host", str(host), "--port", str(port), "--timeout", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
            check=False,
        )
    except FileNotFoundError:
        return {"ready": False, "message": "pg_isready not found"}
    # pg_isready prints "HOST:PORT - accepting connections" / "- no response" / ...
    message = proc.stdout.strip().rpartition(" - ")[2] or "exit %d" % proc.returncode
    return {"ready": proc.returncode == 0, "message": message}


def main():
    args = json.loads(sys.argv[1])
    problems, summary = [], []

    disks = [disk(path) for path in args["disk_paths"]]
    for entry in disks:
        if "error" in entry:
            problems.append("disk %s: %s" % (entry["path"], entry["error"]))
        elif entry["percent"] > args["disk_max_percent"]:
            problems.append("disk %s %d%% > %d%%" % (entry["path"], entry["percent"], args["disk_max_percent"]))
        else:
            summary.append("disk %s %d%%" % (entry["path"], entry["percent"]))

    memory = memory_percent()
    if memory > args["memory_max_percent"]:
        problems.append("memory %d%% > %d%%" % (memory, args["memory_max_percent"]))
    else:
        summary.append("memory %d%%" % memory)

    pg = args.get("postgres")
    pg_state = postgres(pg["host"], pg["port"]) if pg else None
    if pg_state:
        where = "postgresql %s:%s" % (pg["host"], pg["port"])
        if pg_state["ready"]:
            summary.append("%s ready" % where)
        else:
            problems.append("%s not ready (%s)" % (where, pg_state["message"]))

    result = {"problems": problems, "summary": summary, "disk": disks, "memory_percent": memory, "postgres": pg_state}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
