#!/usr/bin/env python3
"""Read-only probe of the log_cleanup role. Argument: JSON {"dirs": [...], "disk_paths": [...]}.
Prints JSON: for each declared directory whether it exists, is a directory, its resolved path
and whether resolving changed it (a symlink in the path); and the usage of the filesystems of
disk_paths (or, when empty, of the existing declared directories)."""

import json
import os
import sys

args = json.loads(sys.argv[1])
dirs = {}
for d in args["dirs"]:
    real = os.path.realpath(d)
    dirs[d] = {
        "exists": os.path.lexists(d),
        "isdir": os.path.isdir(d) and not os.path.islink(d),
        "real": real,
        "symlinked": real != os.path.normpath(d),
    }
paths = args["disk_paths"] or [d for d, v in dirs.items() if v["isdir"]]
disk, seen = [], set()
for p in paths:
    if not os.path.exists(p):
        continue
    st = os.statvfs(p)
    dev = os.stat(p).st_dev
    if dev in seen:
        continue
    seen.add(dev)
    mount = os.path.realpath(p)
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    disk.append(
        {
            "mount": mount,
            "used": used,
            "free": free,
            "percent": round(100 * used / (used + free)) if used + free else 0,
            "total": total,
        }
    )
print(json.dumps({"dirs": dirs, "disk": disk}))
