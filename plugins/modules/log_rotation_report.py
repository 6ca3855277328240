#!/usr/bin/python3
"""Ansible module opsplay.ops.log_rotation_report: the last step of roles/log_rotation.

What it decides and does, its options and its results: log_rotation_report.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import disk_usage


def rejected(install, directory):
    """One message per log set whose candidate file logrotate rejected."""
    messages = []
    for result in install.get("results") or []:
        if "exit_status" not in result:
            continue
        name = (result.get("item") or {}).get("name", "?")
        why = "; ".join(
            line for line in str(result.get("stderr") or "").strip().splitlines() if line
        )
        messages.append(
            "log set '%s' rejected by logrotate, %s/%s left unchanged: %s"
            % (name, directory.rstrip("/"), name, why)
        )
    return messages


def to_rotate(force, present, directory, problems):
    """The files ``logrotate -f`` rotates now: every present set's when ``force``, none when
    logrotate rejected a set (the host fails on that first) or no set is present."""
    if not force or problems:
        return []
    return [os.path.join(directory, entry["name"]) for entry in present]


def rotate(files):
    """Run ``logrotate -f FILES``; None when it succeeded, else why it failed in one line."""
    proc = subprocess.run(["logrotate", "-f", *files], capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line]
    return "logrotate -f failed (exit %d): %s" % (
        proc.returncode,
        "; ".join(lines[-3:]) or "no output",
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "install": {"type": "dict", "default": {}},
            "directory": {"type": "path", "default": "/etc/logrotate.d"},
            "disk_before": {"type": "list", "elements": "dict", "default": []},
            "disk_paths": {"type": "list", "elements": "path", "default": []},
            "force": {"type": "bool", "default": False},
            "present": {"type": "list", "elements": "dict", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    problems = rejected(p["install"], p["directory"])
    files = to_rotate(p["force"], p["present"], p["directory"], problems)
    failure = rotate(files) if files and not module.check_mode else None
    after = disk_usage.filesystems(p["disk_paths"])
    disk = disk_usage.before_after(p["disk_before"], after)
    if problems or failure:
        module.fail_json(
            msg=" | ".join(problems) or failure, rejected=problems, rotated=files, disk=disk
        )
    done = ["rotated now: " + ", ".join(files)] if files else []
    module.exit_json(
        changed=bool(files), msg="; ".join(done + disk), rejected=[], rotated=files, disk=disk
    )


if __name__ == "__main__":
    main()
