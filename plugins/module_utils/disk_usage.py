"""Disk usage of a mount, one rule for every opsplay module (health, status, preflight,
log_cleanup, log_rotation).

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

from ansible.module_utils.common.text.formatters import bytes_to_human

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


def filesystems(paths: list) -> list:
    """Usage of each distinct filesystem holding one of ``paths`` (missing paths skipped), in
    the order first met: ``[{"mount", "used", "free", "percent"}]``."""
    result, seen = [], set()
    for path in paths:
        try:
            device = os.stat(path).st_dev
            measured = usage(path)
        except OSError:
            continue
        if device in seen:
            continue
        seen.add(device)
        mount = os.path.realpath(path)
        while not os.path.ismount(mount):
            mount = os.path.dirname(mount)
        result.append(
            {
                "mount": mount,
                "used": measured["used_bytes"],
                "free": measured["free_bytes"],
                "percent": measured["percent_used"],
            }
        )
    return result


def before_after(before: list, after: list) -> list:
    """'MOUNT: used H (P%) before, H (P%) after, H free' for each filesystem of ``before``
    (a filesystem no longer measured after keeps its numbers)."""
    lines = []
    for old in before:
        new = next((disk for disk in after if disk["mount"] == old["mount"]), old)
        lines.append(
            "%s: used %s (%d%%) before, %s (%d%%) after, %s free"
            % (
                old["mount"],
                bytes_to_human(old["used"]),
                old["percent"],
                bytes_to_human(new["used"]),
                new["percent"],
                bytes_to_human(new["free"]),
            )
        )
    return lines
