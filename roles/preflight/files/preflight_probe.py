#!/usr/bin/env python3
"""Pre-flight probe (roles/preflight), run on the host with ansible.builtin.script.

Reads, without changing anything: the newest verified backup of each database under the
pg_backup directory (from the JSON manifests pg_backup writes beside each archive) and the free
space of the declared paths. Prints one JSON document. Argument: a JSON object
{"backup_dir": str | "", "databases": [str], "disk": [{"path": str, "min_free_mb": int}]}.
"""

import calendar
import contextlib
import json
import os
import sys
import time


def newest_verified(directory):
    """(ended epoch, name) of the newest manifest whose verification passed, or None."""
    best = None
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                manifest = json.load(handle)
            ended = calendar.timegm(time.strptime(manifest["ended"], "%Y-%m-%dT%H:%M:%SZ"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (manifest.get("verified") or {}).get("ok") is True and (best is None or ended > best[0]):
            best = (ended, manifest.get("name", name))
    return best


def backups(backup_dir, databases):
    if not backup_dir:
        return {}
    wanted = set(databases)
    with contextlib.suppress(OSError):
        wanted |= {
            d
            for d in os.listdir(backup_dir)
            if d != "_globals" and os.path.isdir(os.path.join(backup_dir, d))
        }
    now = time.time()
    result = {}
    for database in sorted(wanted):
        found = newest_verified(os.path.join(backup_dir, database))
        result[database] = {"name": found[1], "age_seconds": int(now - found[0])} if found else None
    return result


def disk(paths):
    result = []
    for item in paths:
        path = item["path"]
        try:
            stat = os.statvfs(path)
        except OSError as exc:
            result.append({"path": path, "error": exc.strerror or str(exc)})
            continue
        result.append(
            {
                "path": path,
                "free_mb": stat.f_bavail * stat.f_frsize // (1024 * 1024),
                "min_free_mb": int(item["min_free_mb"]),
            }
        )
    return result


def main():
    args = json.loads(sys.argv[1])
    print(
        json.dumps(
            {
                "backups": backups(args.get("backup_dir") or "", args.get("databases") or []),
                "disk": disk(args.get("disk") or []),
            }
        )
    )


if __name__ == "__main__":
    main()
