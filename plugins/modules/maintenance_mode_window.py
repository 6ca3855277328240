#!/usr/bin/python3
"""Ansible module opsplay.ops.maintenance_mode_window:
the maintenance window's flag and log (roles/maintenance_mode).

What it decides and does, its options and its results: maintenance_mode_window.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_flag

# Reasons of the schedule windows before flags said `scheduled` (older flags).
_SCHEDULE_REASONS = ("weekly maintenance", "monthly maintenance")


def is_scheduled(window):
    if "scheduled" in window:
        return bool(window["scheduled"])
    return window.get("reason") in _SCHEDULE_REASONS


def describe(window):
    """'in maintenance mode since T (run ID, REASON)', as health, status and the recap say it."""
    run = window.get("run_id") or "unknown"
    return "in maintenance mode since %s (run %s, %s)" % (
        window.get("time", "an unknown time"),
        run,
        window.get("reason") or "no reason given",
    )


def plan(state, window, run_id, scheduled, exclusive, close_command):
    """(action, message): action is one of none, open, close, close_abandoned, fail."""
    if state == "read" or (window is None and state != "open"):
        return "none", ""
    if window is None:
        return "open", ""
    ours = bool(run_id) and window.get("run_id") == run_id
    if state == "close":
        if scheduled and not (is_scheduled(window) and window.get("run_id", "") == run_id):
            return "none", ""  # not this schedule run's window: the run that opened it closes it
        return "close", ""
    if ours:
        return "none", ""
    if is_scheduled(window):
        if exclusive:
            return "close_abandoned", ""
        return "fail", (
            "%s, a scheduled window its run may still be in (no opsplay environment lock here "
            "proves that run gone): once it is, close it with `%s`"
            % (describe(window), close_command)
        )
    if state == "recover" or not scheduled:
        return "none", ""  # turned on by hand: stays on until turned off by hand
    return "fail", (
        "%s, turned on by hand: the scheduled window does not take it over; close it with "
        "`%s` first" % (describe(window), close_command)
    )


def end_outcome(outcome, window, run_id, scheduled, exclusive):
    """The outcome logged for closing ``window``: abandoned for another run's scheduled window
    closed by hand under the environment lock, else the one given."""
    if (
        outcome == "ok"
        and not scheduled
        and exclusive
        and is_scheduled(window)
        and window.get("run_id", "") != run_id
    ):
        return "abandoned"
    return outcome


def read_window(path):
    """The open window's start entry, None when no window is open (module_utils
    maintenance_flag); an unreadable flag is an open window whose entry says so."""
    exists, window = maintenance_flag.read(path)
    if not exists:
        return None
    return window if window is not None else {"reason": "unreadable flag"}


def append_line(path, entry):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_flag(path, entry):
    fd, tmp = tempfile.mkstemp(prefix=".maintenance-", dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {
                "type": "str",
                "required": True,
                "choices": ["read", "recover", "open", "close"],
            },
            "flag_path": {"type": "path", "required": True},
            "log_path": {"type": "path", "required": True},
            "run_id": {"type": "str", "default": ""},
            "scheduled": {"type": "bool", "default": False},
            "exclusive": {"type": "bool", "default": False},
            "env": {"type": "str", "default": ""},
            "reason": {"type": "str", "default": ""},
            "actor": {"type": "str", "default": ""},
            "outcome": {"type": "str", "default": "ok"},
            "before": {"type": "dict", "default": {}},
            "close_command": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    window = read_window(p["flag_path"])
    action, message = plan(
        p["state"], window, p["run_id"], p["scheduled"], p["exclusive"], p["close_command"]
    )
    if action == "fail":
        module.fail_json(msg=message, window=window)
    if action == "none":
        module.exit_json(changed=False, window=window, action=action)
    if module.check_mode:
        module.exit_json(changed=True, window=window, action=action)

    common = {"env": p["env"], "actor": p["actor"]}
    if action == "open":
        entry = dict(
            common,
            time=now(),
            event="start",
            reason=p["reason"],
            run_id=p["run_id"],
            scheduled=p["scheduled"],
            before=p["before"],
        )
        append_line(p["log_path"], entry)  # the log first: an open window is always logged
        write_flag(p["flag_path"], entry)
        module.exit_json(changed=True, window=entry, action=action)

    os.unlink(p["flag_path"])  # the site answers again from the next request on
    if action == "close_abandoned":
        outcome, reason = "abandoned", window.get("reason", "")
    else:
        outcome = end_outcome(p["outcome"], window, p["run_id"], p["scheduled"], p["exclusive"])
        reason = p["reason"]
    entry = dict(
        common,
        time=now(),
        event="end",
        reason=reason,
        outcome=outcome,
        run_id=window.get("run_id", ""),
        started=window.get("time", ""),
    )
    if p["run_id"] != window.get("run_id", ""):
        entry["closed_by_run_id"] = p["run_id"]
    append_line(p["log_path"], entry)
    module.exit_json(changed=True, window=window, closed=entry, action=action)


if __name__ == "__main__":
    main()
