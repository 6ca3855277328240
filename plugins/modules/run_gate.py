#!/usr/bin/python3
"""Ansible module opsplay.ops.run_gate: the run gate of every playbook's first play.

Tasks run the action plugin of the same name (plugins/action/run_gate.py) on the controller;
this module holds the documentation and makes the same decision where it runs
(plugins/module_utils/run_gate.py). Options and results: run_gate.yml beside it.
"""

from __future__ import annotations

import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import run_gate


def main():
    module = AnsibleModule(argument_spec=run_gate.ARGUMENT_SPEC, supports_check_mode=True)
    at = datetime.datetime.now(datetime.timezone.utc)
    result = run_gate.decide(module.params, at, check=module.check_mode)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
