#!/usr/bin/python3
"""Ansible module opsplay.ops.pg_maintenance_report: the last step of roles/pg_maintenance, on
the control node.

The role's task runs the action plugin of the same name (plugins/action/pg_maintenance_report.py)
inside ansible-playbook, with no connection to set up; this module holds the documentation and
does the same work (module_utils pg_maintenance_report.conclude) where the module itself runs.
What it decides and does, its options and its results: pg_maintenance_report.yml beside it
(sidecar documentation, read by ansible-doc).
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import pg_maintenance_report as report


def main():
    module = AnsibleModule(argument_spec=report.ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    result = report.conclude(p["results"], p["host"], p["env"], p["directory"])
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
