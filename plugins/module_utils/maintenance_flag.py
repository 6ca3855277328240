"""The maintenance_mode role's flag file: one reader for every module (the window's own module,
the health check and the status read-out), and the window's module's writer.

The flag exists while a maintenance window is open and holds the window's start entry, a JSON
object (``time``, ``run_id``, ``reason``, ``scheduled``, ``before``, ...), written by
``opsplay.ops.maintenance_mode_window``. A flag that exists but cannot be read or is not such an
object still means the site is in maintenance mode: the reader says so (``window`` None) instead
of taking it for no window.

Standard library only: this file is shipped to the host with the module that imports it.
"""

from __future__ import annotations

import json
import os
import tempfile

# Reasons of the schedule windows before flags said `scheduled` (older flags).
_SCHEDULE_REASONS = ("weekly maintenance", "monthly maintenance")


def is_scheduled(window):
    """A schedule run (weekly, monthly) opened the window: that run closes it."""
    if "scheduled" in window:
        return bool(window["scheduled"])
    return window.get("reason") in _SCHEDULE_REASONS


def read(path):
    """(exists, window) for the flag at ``path``: (False, None) when there is none (or no path),
    (True, the start entry) when it is readable, (True, None) when it is not."""
    if not path:
        return False, None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return False, None
    except OSError:
        return True, None
    try:
        window = json.loads(text)
    except ValueError:
        return True, None
    return True, window if isinstance(window, dict) else None


def read_window(path):
    """The open window's start entry, None when no window is open; an unreadable flag is an
    open window whose entry says so."""
    exists, window = read(path)
    if not exists:
        return None
    return window if window is not None else {"reason": "unreadable flag"}


def write(path, entry):
    """Write the flag (0644: nginx reads it) atomically: a temporary file, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=".maintenance-", dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
