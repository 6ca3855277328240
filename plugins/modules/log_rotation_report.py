#!/usr/bin/python3
"""Ansible module opsplay.ops.log_rotation_report: the last step of roles/log_rotation.

What it decides and does, its options and its results: log_rotation_report.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

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


def main():
    module = AnsibleModule(
        argument_spec={
            "install": {"type": "dict", "default": {}},
            "directory": {"type": "path", "default": "/etc/logrotate.d"},
            "disk_before": {"type": "list", "elements": "dict", "default": []},
            "disk_paths": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    problems = rejected(p["install"], p["directory"])
    after = disk_usage.filesystems(p["disk_paths"])
    disk = disk_usage.before_after(p["disk_before"], after)
    if problems:
        module.fail_json(msg=" | ".join(problems), rejected=problems, disk=disk)
    module.exit_json(changed=False, msg="; ".join(disk), rejected=[], disk=disk)


if __name__ == "__main__":
    main()
