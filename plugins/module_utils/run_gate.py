"""The run gate of every playbook (issue 18 item 1, issue 22 item 2), decided on the controller.

Before a playbook touches a host, its first play runs ``opsplay.ops.run_gate`` once
(plugins/action/run_gate.py): the maintenance calendar passed as data (``opsplay_calendar``;
the CLI passes the environment's calendar.yml, AWX users put the same data in inventory or
group vars) refuses a disruptive run outside its window or inside a freeze with the CLI's line
(plugins/module_utils/maintenance_calendar.py, ONE implementation for both); and the run's
lease identity (controller, user, run id, what) is named once for every host. Both are returned
in ``gate``, which playbooks/tasks/gates.yml sets (run_once set_fact) on every host of the play
as ``opsplay_window_end`` (interfaces: ISO UTC or "") and ``opsplay_lease`` (what it passes to
opsplay.ops.lease). Not as ``ansible_facts``: Ansible keeps those in its fact cache, which
ansible-runner makes a jsonfile cache, and decodes them again on every task of every host.
"""

from __future__ import annotations

import getpass
import os
import socket

from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_calendar as mc
from ansible_collections.opsplay.ops.plugins.module_utils.run_id import of_this_run

ARGUMENT_SPEC = {
    "what": {"type": "str", "required": True},
    "env": {"type": "str", "default": ""},
    "schedule": {"type": "str", "default": ""},
    "disruptive": {"type": "bool", "default": False},
    "calendar": {"type": "raw"},
    "outside_window": {"type": "str", "default": ""},
    "run_ids": {"type": "list", "elements": "str", "default": []},
    "users": {"type": "list", "elements": "str", "default": []},
    "awx_job_id": {"type": "str", "default": ""},
    "lock": {"type": "str", "default": ""},
}
OVERRIDE = "opsplay_outside_window_reason=REASON"


def identity(what, run_ids, users, at, controller=None, lock="", awx_job_id=""):
    """The lease's holder: this control node, the first user given (AWX's launching user) or the
    controller's, and this run's id as module_utils/run_id.py decides it (the first run id given,
    opsplay's, else ``awx-JOB_ID`` for an AWX job: the same id the maintenance_mode role's
    windows record), else one made for this run."""
    controller = controller or socket.gethostname()
    user = next((u for u in users if u and u.strip()), "") or _user()
    run_id = of_this_run(run_ids, [awx_job_id])
    if not run_id:
        run_id = "{}-{}-{}".format(controller, at.strftime("%Y%m%dT%H%M%SZ"), os.urandom(3).hex())
    return {"controller": controller, "user": user, "run_id": run_id, "what": what, "lock": lock}


def _user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (containers)
        return str(os.getuid())


def decide(args, at, check=False, controller=None):
    """The gate's result for the action plugin: failed with the refusal's one line, or the
    facts. ``check``: a dry run is never refused (as the CLI's --check)."""
    try:
        answer = mc.gate(
            args.get("calendar") or None,
            at,
            what=args["what"],
            env=args.get("env") or "",
            schedule=args.get("schedule") or None,
            disruptive=bool(args.get("disruptive")),
            outside_window=args.get("outside_window") or "",
            override=OVERRIDE,
        )
    except mc.CalendarError as exc:
        return {"failed": True, "msg": str(exc), "calendar_error": True}
    if not answer.allowed and not check:
        return {"failed": True, "msg": answer.message, "outside_window": True}
    gate = {
        "opsplay_window_end": answer.window_end,
        "opsplay_lease": identity(
            args["what"],
            args.get("run_ids") or [],
            args.get("users") or [],
            at,
            controller,
            args.get("lock") or "",
            args.get("awx_job_id") or "",
        ),
    }
    return {"changed": False, "msg": answer.message, "gate": gate}
