"""Disk usage of a mount, one rule for every opsplay module (health, status, preflight).

The rule, the one df uses for its Use% column:

- ``used`` is what the filesystem holds: ``(f_blocks - f_bfree) * f_frsize``;
- ``free`` is what an unprivileged user can still write: ``f_bavail * f_frsize`` (the
  root-reserved blocks count neither as used nor as free);
- ``percent_used`` is ``used / (used + free)``;
- every rounding goes towards LESS room: percent used is rounded UP to a whole percent (99.01 %
  is 100 %, as df prints it), free space is rounded DOWN (``free_mib`` is whole MiB), so a
  threshold is never passed by rounding. An empty filesystem (no blocks) is 0 % used.

Standard library only: this file is shipped to the host with the module that imports it.
"""

from __future__ import annotations

import os

MIB = 1024 * 1024


def percent_used(used_bytes: int, free_bytes: int) -> int:
    """Whole percent used, rounded up: ``used / (used + free)``; 0 when both are 0."""
    total = used_bytes + free_bytes
    if total <= 0:
        return 0
    # Integer ceiling: no float rounding surprises at exact percentages (50 of 100 is 50).
    return -(-100 * used_bytes // total)


def free_mib(free_bytes: int) -> int:
    """Whole MiB free, rounded down."""
    return free_bytes // MIB


def usage(path: str) -> dict:
    """Usage of the filesystem holding ``path``; an OSError (missing path...) propagates.

    Returns ``{"path", "size_bytes", "used_bytes", "free_bytes", "free_mib", "percent_used"}``
    where size is ``used + free`` (what df's Size minus the reserved blocks is).
    """
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    free = st.f_bavail * st.f_frsize
    return {
        "path": path,
        "size_bytes": used + free,
        "used_bytes": used,
        "free_bytes": free,
        "free_mib": free_mib(free),
        "percent_used": percent_used(used, free),
    }


def usage_or_error(path: str) -> dict:
    """``usage(path)``, or ``{"path", "error"}`` naming why the path cannot be measured."""
    try:
        return usage(path)
    except OSError as exc:
        return {"path": path, "error": exc.strerror or str(exc)}
