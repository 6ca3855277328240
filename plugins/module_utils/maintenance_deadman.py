"""The maintenance window's dead-man switch, and the one way a window closes.

Turning maintenance mode on arms, on the host, a transient systemd timer (``TIMER``, made with
``systemd-run --on-active``) that runs this file as a script at the window's deadline:
``python3 maintenance_deadman.py expire --flag FLAG --log LOG``. If nobody closed the window
first, it closes it as every other close does (``close``: the flag removed, so nginx serves the
app again from the next request on, then the end logged, here with outcome ``expired``, then the
timer disarmed). Turning maintenance mode off closes the window through the same ``close``, which
disarms the timer: nothing is left behind.

The deadline is ``max_duration`` seconds after the window opens, but never after the window's end
(``window_end``, ISO UTC; empty: none). A window already on keeps the timer it has (never
shortened, never re-armed needlessly); one found on without a timer is armed again, at the later
of the deadline it recorded and the new one.

Closing never reloads nginx: the snippet tests the flag on every request, so the running nginx,
whose configuration passed ``nginx -t`` when it was loaded, serves the app again as soon as the
flag is gone; a configuration broken on disk since then is never loaded by a close.

Standard library only. It is shipped to the host with the module that imports it, and that
module copies it (with ``SOURCES``, the module_utils it imports) to a directory on the host,
where the timer runs it as a script: the imports below then find the copies beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys
import tempfile

try:
    from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_flag, timestamps
except ImportError:  # run by the timer as a script: the copies lie beside this file
    import maintenance_flag  # type: ignore[no-redef]
    import timestamps  # type: ignore[no-redef]

UNIT = "opsplay-maintenance-expire"
TIMER = UNIT + ".timer"
SCRIPT = "maintenance_deadman.py"
# What the timer's script needs on the host: this file and what it imports.
SOURCES = (SCRIPT, "maintenance_flag.py", "timestamps.py")
EXPIRED_BY = "opsplay dead-man switch (%s)" % TIMER
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$")
_DESCRIBED = re.compile(r"expires at (\S+Z)")


def parse_duration(value):
    """Seconds (> 0) of maintenance_mode_max_duration: a number of seconds (``7200``, ``"90"``)
    or hours/minutes/seconds (``2h``, ``45m``, ``1h30m``, ``90s``); ValueError in one line."""
    text = str(value).strip().lower().replace(" ", "")
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif text.isdigit():
        seconds = int(text)
    else:
        match = _DURATION.match(text)
        if text and match:
            h, m, s = (int(part or 0) for part in match.groups())
            seconds = h * 3600 + m * 60 + s
    if not seconds or seconds <= 0:
        raise ValueError(
            "maintenance_mode_max_duration must be seconds or a duration like 90m, 2h or 1h30m, "
            "more than 0 (got %r)" % (value,)
        )
    return seconds


def deadline_at(now, max_seconds, window_end):
    """When the window must end: ``max_seconds`` after ``now``, at most ``window_end`` (ISO UTC
    text, empty: none). ValueError in one line for a bad or past window end."""
    at = now + datetime.timedelta(seconds=max_seconds)
    if not window_end:
        return at
    try:
        end = timestamps.parse_iso(window_end)
    except ValueError as exc:
        raise ValueError("maintenance_mode_deadline: %s" % exc) from None
    if end <= now:
        raise ValueError(
            "the window ended at %s (maintenance_mode_deadline): maintenance mode is not turned "
            "on after its window" % window_end
        )
    return min(at, end)


def run(command):
    """(rc, stdout, stderr) of ``command``; rc 127 when it cannot be started."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        return 127, "", str(exc)
    return done.returncode, done.stdout, done.stderr


def armed(systemctl):
    """The deadline (ISO text) of the armed timer, "" when armed with an unknown one, None when
    no timer is armed."""
    rc, out, _err = run([*systemctl, "show", TIMER, "-p", "ActiveState", "-p", "Description"])
    if rc != 0:
        return None
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if props.get("ActiveState") != "active":
        return None
    found = _DESCRIBED.search(props.get("Description", ""))
    return found.group(1) if found else ""


def disarm(systemctl):
    """No timer left: stopped (a transient timer is then unloaded), failed states cleared."""
    run([*systemctl, "stop", TIMER])
    run([*systemctl, "reset-failed", TIMER, UNIT + ".service"])


def arm_command(at, now, python, directory, flag, log, systemd_run):
    """The systemd-run command arming the timer for ``at`` (a monotonic delay, so a clock set
    meanwhile moves nothing; the absolute deadline is in the description)."""
    seconds = max(1, math.ceil((at - now).total_seconds()))
    return [
        *systemd_run,
        "--unit=%s" % UNIT,
        "--description=opsplay maintenance mode expires at %s" % timestamps.iso(at),
        "--on-active=%ds" % seconds,
        "--timer-property=AccuracySec=1s",
        "--timer-property=RemainAfterElapse=no",
        "--collect",
        "--property=Type=oneshot",
        python,
        os.path.join(directory, SCRIPT),
        "expire",
        "--flag",
        flag,
        "--log",
        log,
    ]


def arm(command, systemctl):
    """Arm the timer (replacing one armed before); the one-line problem, or None."""
    disarm(systemctl)
    rc, out, err = run(command)
    if rc != 0:
        return "cannot arm the maintenance deadline (%s): %s" % (
            command[0],
            " ".join((err or out).split()) or "exit %d" % rc,
        )
    return None


def install_program(directory, sources):
    """Write the timer's script and what it imports into ``directory`` (0644, atomically), each
    only when it differs; the names written."""
    written = []
    for name in SOURCES:
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as handle:
                if handle.read() == sources[name]:
                    continue
        except OSError:
            pass
        os.makedirs(directory, 0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + name, dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(sources[name])
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
        written.append(path)
    return written


def now_iso():
    return timestamps.iso(timestamps.now())


def append_line(path, entry):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def end_outcome(outcome, window, run_id, scheduled, exclusive):
    """The outcome logged for closing ``window``: abandoned for another run's scheduled window
    closed by hand under the environment lock, else the one given."""
    if (
        outcome == "ok"
        and not scheduled
        and exclusive
        and maintenance_flag.is_scheduled(window)
        and window.get("run_id", "") != run_id
    ):
        return "abandoned"
    return outcome


def end_entry(p, window, action, outcome):
    """The window's end entry; ``outcome`` None: the one end_outcome decides."""
    if action == "close_abandoned":
        outcome, reason = "abandoned", window.get("reason", "")
    else:
        if outcome is None:
            outcome = end_outcome(p["outcome"], window, p["run_id"], p["scheduled"], p["exclusive"])
        reason = p["reason"]
    entry = {
        "env": p["env"],
        "actor": p["actor"],
        "time": now_iso(),
        "event": "end",
        "reason": reason,
        "outcome": outcome,
        "run_id": window.get("run_id", ""),
        "started": window.get("time", ""),
    }
    if window.get("deadline"):
        entry["deadline"] = window["deadline"]
    if p["run_id"] != window.get("run_id", ""):
        entry["closed_by_run_id"] = p["run_id"]
    return entry


def close(p, window, action, outcome=None):
    """Close the window: remove the flag (the site answers again from the next request on), log
    the end, disarm the timer (``p["systemctl"]``, when given). The end entry; None when the
    flag was already gone (the timer and an `off` at the same moment: one of them closes)."""
    try:
        os.unlink(p["flag_path"])
    except FileNotFoundError:
        return None
    try:
        entry = end_entry(p, window, action, outcome)
        append_line(p["log_path"], entry)
    finally:
        if p.get("systemctl"):
            disarm(p["systemctl"])
    return entry


def expire(flag_path, log_path, systemctl):
    """The timer's work: close the window still open with outcome expired (nothing when it was
    closed); the end entry or None."""
    exists, window = maintenance_flag.read(flag_path)
    if not exists:
        disarm(systemctl)
        return None
    window = window or {"reason": "unreadable flag"}
    p = {
        "flag_path": flag_path,
        "log_path": log_path,
        "env": window.get("env", ""),
        "actor": EXPIRED_BY,
        "reason": window.get("reason", ""),
        "run_id": window.get("run_id", ""),
        "systemctl": systemctl,
    }
    return close(p, window, "close", "expired")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Close a maintenance window past its deadline.")
    parser.add_argument("action", choices=["expire"])
    parser.add_argument("--flag", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--systemctl", default="systemctl")
    args = parser.parse_args(argv)
    entry = expire(args.flag, args.log, [args.systemctl])
    print(json.dumps(entry, sort_keys=True) if entry else "no window open: nothing to close")
    return 0


if __name__ == "__main__":
    sys.exit(main())
