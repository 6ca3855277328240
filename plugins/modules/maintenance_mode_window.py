#!/usr/bin/python3
"""Ansible module opsplay.ops.maintenance_mode_window:
the maintenance window's flag and log (roles/maintenance_mode).

What it decides and does, its options and its results: DOCUMENTATION and RETURN below.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: maintenance_mode_window
short_description: Open, close or recover the maintenance window's flag and log
description:
  - Used by the C(maintenance_mode) role on the web host, as a user that may write O(flag_path)
    and O(log_path) (root with the role's defaults, C(/var/lib/opsplay) and C(/var/log)).
    nginx answers 503 while the flag file exists (the snippet of
    M(opsplay.ops.maintenance_mode_nginx)); this module only writes and removes that file and
    appends to the log, and never reloads nginx.
  - The flag holds the window's start entry (JSON - time, env, reason, actor, run_id,
    scheduled, and what the site answered before). The log gets one JSON line per start and
    per end. Opening appends the log line first, then writes the flag atomically (a temporary
    file, then a rename), so a window that is on always has its start in the log. Closing
    removes the flag first (the site answers again from the next request on), then logs the end.
  - A window is I(scheduled) when a weekly's or monthly's run opened it (that run closes it);
    otherwise it was turned on by hand and stays on until turned off by hand.
  - O(state=read) returns the flag's entry in RV(window) and changes nothing.
  - O(state=recover) deals with a scheduled window found open that is not this run's (its run
    is gone only if nothing else can be running). With O(exclusive) (opsplay holds the
    environment's lock for this run) it is closed with outcome V(abandoned); without it the
    module fails naming the window and O(close_command). A window turned on by hand stays.
  - O(state=open) logs the start and writes the flag, unless this run's window, or (for a
    window by hand) one by hand, is already on. Another run's scheduled window found open is
    handled as with O(state=recover) - closed as V(abandoned) under O(exclusive), and that is
    all this call does (RV(action=close_abandoned)); else the module fails. A scheduled window
    refuses to take over one turned on by hand (fails naming O(close_command)).
  - O(state=close) removes the flag and logs the end with O(outcome). A scheduled close (the
    schedule's C(always:)) only closes this run's own window; by hand it closes any, and logs
    V(abandoned) instead of V(ok) for another run's scheduled window under O(exclusive). No
    flag, nothing to do.
  - An unreadable flag (not JSON) counts as a window turned on by hand with reason
    V(unreadable flag).
  - In check mode it says what it would do (RV(action), RV(changed)) and writes nothing.
options:
  state:
    description: What to do with the window (see the description).
    type: str
    required: true
    choices: [read, recover, open, close]
  flag_path:
    description: The flag file (the role's C(maintenance_mode_flag_path)); its directory exists.
    type: path
    required: true
  log_path:
    description: The window log, one JSON line per start and end (created mode 0644).
    type: path
    required: true
  run_id:
    description:
      - The run's id, recorded in the flag and the log. A window with this run_id is this
        run's own. Empty matches no window.
    type: str
    default: ""
  scheduled:
    description:
      - This run is a schedule's (weekly, monthly), which closes its own window. Recorded in
        the flag at O(state=open).
    type: bool
    default: false
  exclusive:
    description:
      - This run holds opsplay's lock of the environment, so no other run can be in a window
        found open; only then is another run's scheduled window closed as V(abandoned).
    type: bool
    default: false
  env:
    description: The environment's name, recorded in the flag and the log.
    type: str
    default: ""
  reason:
    description: Why the window opens or closes, recorded in the flag and the log.
    type: str
    default: ""
  actor:
    description: Who runs it, recorded in the flag and the log.
    type: str
    default: ""
  outcome:
    description:
      - The outcome logged at O(state=close), e.g. V(ok) or V(failed) (the role's rescue when
        the window could not be proven).
    type: str
    default: ok
  before:
    description:
      - What the site answered before the window, from
        M(opsplay.ops.maintenance_mode_probe) with C(expect=baseline); recorded in the flag at
        O(state=open) so that turning it off can prove the site answers as before.
    type: dict
    default: {}
  close_command:
    description: The command that closes a window by hand, named in refusals.
    type: str
    default: ""
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
author: opsplay
"""

EXAMPLES = r"""
- name: Read the maintenance flag
  opsplay.ops.maintenance_mode_window:
    state: read
    flag_path: "{{ maintenance_mode_flag_path }}"
    log_path: "{{ maintenance_mode_log_path }}"
  register: maintenance_mode_flag

- name: Close a scheduled window left open by a run that is gone
  opsplay.ops.maintenance_mode_window:
    state: recover
    flag_path: "{{ maintenance_mode_flag_path }}"
    log_path: "{{ maintenance_mode_log_path }}"
    run_id: "{{ maintenance_mode_run_id }}"
    exclusive: "{{ maintenance_mode_exclusive | bool }}"
    env: "{{ maintenance_mode_env }}"
    actor: "{{ maintenance_mode_actor }}"
    close_command: "{{ maintenance_mode_close_command }}"

- name: Turn maintenance mode on (log the start, then write the flag)
  opsplay.ops.maintenance_mode_window:
    state: open
    flag_path: /var/lib/opsplay/maintenance.flag
    log_path: /var/log/opsplay-maintenance.log
    run_id: 20261130T020041-4711
    scheduled: true
    exclusive: true
    env: prod
    reason: weekly maintenance
    actor: opsplay schedule
    before:
      site: "{{ maintenance_mode_before.site }}"
      health: "{{ maintenance_mode_before.health }}"
    close_command: opsplay maintenance-mode off --env prod
  register: maintenance_mode_opened

- name: Turn maintenance mode off (remove the flag, then log the end)
  opsplay.ops.maintenance_mode_window:
    state: close
    flag_path: "{{ maintenance_mode_flag_path }}"
    log_path: "{{ maintenance_mode_log_path }}"
    run_id: "{{ maintenance_mode_run_id }}"
    scheduled: "{{ maintenance_mode_scheduled | bool }}"
    exclusive: "{{ maintenance_mode_exclusive | bool }}"
    env: "{{ maintenance_mode_env }}"
    reason: "{{ maintenance_mode_reason }}"
    actor: "{{ maintenance_mode_actor }}"
    outcome: "{{ maintenance_mode_outcome }}"
  register: maintenance_mode_closed
"""

RETURN = r"""
action:
  description:
    - What the module did (or, in check mode, would do). V(none), V(open), V(close) or
      V(close_abandoned) (another run's scheduled window closed with outcome V(abandoned)).
  returned: success
  type: str
  sample: open
window:
  description:
    - The window's flag entry. The one found (null when there is no flag); after
      V(open), the entry just written. Also returned when the module refuses.
  returned: always
  type: dict
  sample:
    time: "2026-11-30T02:00:41Z"
    event: start
    env: prod
    reason: weekly maintenance
    actor: opsplay schedule
    run_id: 20261130T020041-4711
    scheduled: true
    before: {"site": 200, "health": {"/healthz": 200}}
closed:
  description:
    - The end entry appended to the log. C(time), C(event=end), C(env), C(actor), C(reason),
      C(outcome), C(run_id) and C(started) of the window closed, and C(closed_by_run_id)
      when another run closed it.
  returned: when a window was closed (RV(action) V(close) or V(close_abandoned)), not in check mode
  type: dict
  sample:
    time: "2026-11-30T02:14:03Z"
    event: end
    env: prod
    actor: opsplay schedule
    reason: weekly maintenance
    outcome: ok
    run_id: 20261130T020041-4711
    started: "2026-11-30T02:00:41Z"
msg:
  description: Why the window is refused, naming it and O(close_command).
  returned: failure
  type: str
  sample: >-
    in maintenance mode since 2026-11-30T01:00:00Z (run r0, manual), turned on by hand: the
    scheduled window does not take it over; close it with
    `opsplay maintenance-mode off --env prod` first
"""

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
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        window = json.loads(text)
    except ValueError:
        window = None
    return window if isinstance(window, dict) else {"reason": "unreadable flag"}


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
