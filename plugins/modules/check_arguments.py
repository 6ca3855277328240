#!/usr/bin/python3
"""Ansible module opsplay.ops.check_arguments: the argument check of a playbook's first play.

Tasks run the action plugin of the same name (plugins/action/check_arguments.py) on the
controller, where the roles' argument specs are; this module holds the documentation (options
and results: check_arguments.yml beside it) and, run on a host, says so.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import argument_check


def main():
    module = AnsibleModule(argument_spec=argument_check.ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(
        msg="opsplay.ops.check_arguments runs on the controller (its action plugin), where the"
        " roles' argument specs are"
    )


if __name__ == "__main__":
    main()
