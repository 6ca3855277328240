#!/usr/bin/python3
"""Ansible module opsplay.ops.maintenance_mode_window:
the maintenance window's flag and log (roles/maintenance_mode).

What it decides and does, its options and its results: maintenance_mode_window.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_deadman as deadman
from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_nginx as nginx
from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_probe as probe
from ansible_collections.opsplay.ops.plugins.module_utils import timestamps
from ansible_collections.opsplay.ops.plugins.module_utils.maintenance_deadman import (
    append_line,
    close,
)
from ansible_collections.opsplay.ops.plugins.module_utils.maintenance_flag import (
    is_scheduled,
    read_window,
)
from ansible_collections.opsplay.ops.plugins.module_utils.maintenance_flag import (
    write as write_flag,
)
from ansible_collections.opsplay.ops.plugins.module_utils.run_id import of_this_run


def describe(window):
    """'in maintenance mode since T (run ID, REASON)', as health, status and the recap say it."""
    run = window.get("run_id") or "unknown"
    return "in maintenance mode since %s (run %s, %s)" % (
        window.get("time", "an unknown time"),
        run,
        window.get("reason") or "no reason given",
    )


def this_run(p: dict) -> str:
    """The run id the window records and compares: run_id when given, else this run's id from
    opsplay's run id and AWX's job id (module_utils/run_id.py: the one the run's lease names)."""
    return of_this_run([p["run_id"], p["opsplay_run_id"]], [p["awx_job_id"], p["tower_job_id"]])


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


def start_entry(p, before, deadline=None):
    """The window's start entry: logged, then written as the flag. With its deadline (ISO) when
    the dead-man switch is armed, and the reason of a run outside its calendar window."""
    entry = {
        "env": p["env"],
        "actor": p["actor"],
        "time": deadman.now_iso(),
        "event": "start",
        "reason": p["reason"],
        "run_id": p["run_id"],
        "scheduled": p["scheduled"],
        "before": before,
    }
    if deadline:
        entry["deadline"] = deadline
    if p.get("outside_window_reason"):
        entry["outside_window"] = p["outside_window_reason"]
    return entry


def make_dirs(path):
    """The directory of ``path`` (0755: nginx must search the flag's and read the page's)."""
    folder = os.path.dirname(path or "")
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, 0o755)


def open_window(p, before, deadline=None):
    """Log the start first (an open window is always logged), then write the flag."""
    entry = start_entry(p, before, deadline)
    make_dirs(p["flag_path"])
    append_line(p["log_path"], entry)
    write_flag(p["flag_path"], entry)
    return entry


class Window:
    """One call of the module: what it found, did and answers, reported as the module's result."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.p["run_id"] = this_run(self.p)
        self.result = {"changed": False, "diff": [], "run_id": self.p["run_id"]}

    def fail(self, msg):
        self.result.pop("diff", None)
        self.module.fail_json(msg=msg, **self.result)

    def done(self):
        if not self.module._diff:
            self.result.pop("diff", None)
        self.module.exit_json(**self.result)

    def decide(self, state):
        """The window found and what to do with it (fails the host on 'fail')."""
        p = self.p
        window = read_window(p["flag_path"])
        action, message = plan(
            state, window, p["run_id"], p["scheduled"], p["exclusive"], p["close_command"]
        )
        self.result.update(window=window, action=action)
        if action == "fail":
            self.fail(message)
        return window, action

    def close_abandoned(self, window):
        """Close another run's scheduled window that run is gone from (outcome abandoned)."""
        self.result.update(changed=True, abandoned=window)
        self.flag_diff(window, None)
        if not self.module.check_mode:
            self.result["closed"] = close(self.p, window, "close_abandoned")

    def flag_diff(self, before, after):
        def text(entry):
            return json.dumps(entry, sort_keys=True, indent=2) + "\n" if entry else ""

        self.result["diff"].append(
            {
                "before_header": self.p["flag_path"],
                "after_header": self.p["flag_path"],
                "before": text(before),
                "after": text(after),
            }
        )

    def install(self):
        """Page, snippet and includes, only with a passing nginx -t; nginx reloaded if changed."""
        p = self.p
        if not p["snippet_path"]:
            return
        snippet = os.path.realpath(p["snippet_path"])
        # Sites are often symlinks (sites-enabled -> sites-available): change the file itself.
        sites = [os.path.realpath(site) for site in p["sites"]]
        page = os.path.realpath(p["page_path"]) if p["page_path"] else None
        changes, problems = nginx.plan(
            snippet, p["snippet_content"], sites, nginx.read_bytes, page, p["page_content"]
        )
        if problems:
            self.fail("; ".join(problems))
        self.result.update(files=sorted(changes), reloaded=False)
        self.result["diff"].extend(nginx.diff(changes, nginx.read_bytes))
        if not changes:
            return
        self.result["changed"] = True
        if self.module.check_mode:
            return
        make_dirs(page)
        failure = nginx.apply(changes, p["test_command"])
        if failure:
            self.fail(failure)
        self.reload()

    def reload(self):
        rc, out, err = self.module.run_command(self.p["reload_command"])
        if rc != 0:
            self.fail(
                "reloading nginx failed (%s): %s"
                % (" ".join(self.p["reload_command"]), " ".join((err or out).split()))
            )
        self.result["reloaded"] = True

    def deadline(self):
        """When a window opened now must end (None: no dead-man switch asked); bad input fails
        the host in one line before anything is touched."""
        p = self.p
        if p["max_duration"] in (None, ""):
            return None
        try:
            seconds = deadman.parse_duration(p["max_duration"])
            return deadman.deadline_at(timestamps.now(), seconds, p["deadline"])
        except ValueError as exc:
            return self.fail(str(exc))

    def arm(self, at):
        """Arm the dead-man switch for ``at`` (its script written on the host first); a failure
        fails the host in one line. Check mode: nothing armed."""
        p = self.p
        self.result.update(changed=True, deadline=timestamps.iso(at))
        if self.module.check_mode:
            return
        missing = [name for name in deadman.SOURCES if name not in (p["expiry_sources"] or {})]
        if missing:
            self.fail("expiry_sources lacks %s: cannot arm the maintenance deadline" % missing)
        deadman.install_program(p["expiry_dir"], p["expiry_sources"])
        python = sys.executable or "/usr/bin/python3"
        command = deadman.arm_command(
            at, timestamps.now(), python, p["expiry_dir"], p["flag_path"], p["log_path"],
            p["systemd_run"],
        )  # fmt: skip
        problem = deadman.arm(command, p["systemctl"])
        if problem:
            self.fail(problem)
        self.result["armed"] = True

    def keep_armed(self, window, at):
        """A window already on keeps the timer it has (never shortened, nothing re-armed); one
        without a timer is armed again, at the later of its recorded deadline and ``at``."""
        if at is None:
            return
        found = deadman.armed(self.p["systemctl"])
        if found is not None:
            self.result["deadline"] = found
            return
        with contextlib.suppress(ValueError):  # no deadline recorded: the new one
            at = max(at, timestamps.parse_iso(window.get("deadline")))
        self.arm(at)

    def prove(self, expect, before):
        """(answers, problem) of the site's proof; nothing fetched in check mode or without URL."""
        p = self.p
        if self.module.check_mode or not p["site_url"]:
            return {}, None
        try:
            answers, problem = probe.prove(
                p["site_url"], p["health_paths"], expect, before, p["wait"], p["timeout"]
            )
        except Exception as exc:  # the window must still be closed
            answers, problem = {}, "maintenance mode not %s: the proof failed: %s" % (expect, exc)
        self.result["answers"] = answers
        return answers, problem


def run_recover(w):
    window, action = w.decide("recover")
    if action == "close_abandoned":
        w.close_abandoned(window)
    w.done()


def run_install(w):
    problem = probe.bad_health_paths(w.p["health_paths"])
    if problem:
        w.fail(problem)
    w.install()
    w.done()


def run_open(w):
    """Recover, install, record what the site answers, open, prove 503; unproven: closed again."""
    p = w.p
    problem = probe.bad_health_paths(p["health_paths"])
    if problem:
        w.fail(problem)
    at = w.deadline()
    window, action = w.decide("open")
    if action == "close_abandoned":
        w.close_abandoned(window)
        window, action = None, "open"
        w.result["action"] = action
    w.install()
    if action == "open":
        w.result["changed"] = True
        deadline = timestamps.iso(at) if at else None
        if w.module.check_mode:
            w.result["deadline"] = deadline
            w.flag_diff(None, start_entry(p, {}, deadline))
            w.done()
        before, problem = probe.baseline(p["site_url"], p["health_paths"], p["timeout"])
        if problem:
            w.fail(problem)
        if at:
            w.arm(at)  # before the flag: a window is never on without its deadline
        window = open_window(p, before, deadline)
        w.result["window"] = window
        w.flag_diff(None, window)
    else:
        w.keep_armed(window, at)
    _answers, problem = w.prove("on", window.get("before") or {})
    if problem:
        if action == "open":
            w.result["closed"] = close(p, window, "close", outcome="failed")
        w.fail(problem)
    w.done()


def run_close(w):
    """Remove the flag, log the end, then prove the site answers as before the window."""
    window, action = w.decide("close")
    if action == "none":
        w.done()
    w.result["changed"] = True
    w.flag_diff(window, None)
    if w.module.check_mode:
        w.done()
    w.result["closed"] = close(w.p, window, action)
    _answers, problem = w.prove("off", window.get("before") or {})
    if problem:
        w.fail(problem)
    w.done()


ARGUMENT_SPEC = {
    "state": {
        "type": "str",
        "required": True,
        "choices": ["read", "recover", "install", "open", "close"],
    },
    "flag_path": {"type": "path", "required": True},
    "log_path": {"type": "path", "required": True},
    "run_id": {"type": "str", "default": ""},
    "opsplay_run_id": {"type": "str", "default": ""},
    "awx_job_id": {"type": "raw", "default": ""},
    "tower_job_id": {"type": "raw", "default": ""},
    "scheduled": {"type": "bool", "default": False},
    "exclusive": {"type": "bool", "default": False},
    "env": {"type": "str", "default": ""},
    "reason": {"type": "str", "default": ""},
    "actor": {"type": "str", "default": ""},
    "outcome": {"type": "str", "default": "ok"},
    "close_command": {"type": "str", "default": ""},
    "page_path": {"type": "path", "default": ""},
    "page_content": {"type": "str", "default": ""},
    "snippet_path": {"type": "path", "default": ""},
    "snippet_content": {"type": "str", "default": ""},
    "sites": {"type": "list", "elements": "path", "default": []},
    "test_command": {"type": "list", "elements": "str", "default": ["nginx", "-t"]},
    "reload_command": {
        "type": "list",
        "elements": "str",
        "default": ["systemctl", "reload-or-restart", "nginx"],
    },
    "site_url": {"type": "str", "default": ""},
    "health_paths": {"type": "list", "elements": "str", "default": []},
    "wait": {"type": "float", "default": 10},
    "timeout": {"type": "float", "default": 5},
    "max_duration": {"type": "raw", "default": ""},
    "deadline": {"type": "str", "default": ""},
    "outside_window_reason": {"type": "str", "default": ""},
    "expiry_dir": {"type": "path", "default": "/usr/local/lib/opsplay/maintenance-expire"},
    "expiry_sources": {"type": "dict", "default": {}},
    "systemctl": {"type": "list", "elements": "str", "default": ["systemctl"]},
    "systemd_run": {"type": "list", "elements": "str", "default": ["systemd-run"]},
}
RUNNERS = {"recover": run_recover, "install": run_install, "open": run_open, "close": run_close}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "install", ["snippet_path"])],
        supports_check_mode=True,
    )
    w = Window(module)
    if module.params["state"] == "read":
        w.decide("read")
        w.done()
    RUNNERS[module.params["state"]](w)


if __name__ == "__main__":
    main()
