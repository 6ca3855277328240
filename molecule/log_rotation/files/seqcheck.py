#!/usr/bin/env python3
"""Read a log and all its rotated files (.N and .N.gz) and report, as JSON, whether the
sequence numbers 0..LAST appear exactly once each with no NUL byte.
Usage: seqcheck.py LOG LASTFILE"""

import collections
import glob
import gzip
import json
import pathlib
import sys

log, lastfile = sys.argv[1], sys.argv[2]
last = int(pathlib.Path(lastfile).read_text())
files = sorted(glob.glob(log) + glob.glob(log + ".*"))
counts: collections.Counter[int] = collections.Counter()
nul = bad = 0
for name in files:
    opener = gzip.open if name.endswith(".gz") else open
    with opener(name, "rb") as f:
        data = f.read()
    nul += data.count(b"\0")
    for line in data.split(b"\n"):
        if line:
            try:
                counts[int(line)] += 1
            except ValueError:
                bad += 1
missing = [n for n in range(last + 1) if n not in counts]
print(
    json.dumps(
        {
            "files": len(files),
            "compressed": sum(1 for name in files if name.endswith(".gz")),
            "last": last,
            "lines": sum(counts.values()),
            "missing": len(missing),
            "first_missing": missing[:5],
            "duplicates": sum(1 for c in counts.values() if c > 1),
            "beyond_last": sum(1 for n in counts if n > last or n < 0),
            "nul_bytes": nul,
            "unparsable_lines": bad,
        }
    )
)
