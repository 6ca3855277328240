#!/usr/bin/python3
"""Ansible module opsplay.ops.maintenance_mode_probe:
what the site and its health locations answer, fetched on the host.

What it decides and does, its options and its results: maintenance_mode_probe.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.maintenance_probe import (  # noqa: F401
    baseline,
    expected,
    fetch,
    health_urls,
    mismatches,
    prove,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "site_url": {"type": "str", "required": True},
            "health_paths": {"type": "list", "elements": "str", "default": []},
            "expect": {"type": "str", "required": True, "choices": ["baseline", "on", "off"]},
            "before": {"type": "dict", "default": {}},
            "wait": {"type": "float", "default": 10},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["expect"] == "baseline":
        before, problem = baseline(params["site_url"], params["health_paths"], params["timeout"])
        if problem:
            module.fail_json(msg=problem)
        module.exit_json(changed=False, **before)
    answers, problem = prove(
        params["site_url"],
        params["health_paths"],
        params["expect"],
        params["before"],
        params["wait"],
        params["timeout"],
    )
    if problem:
        module.fail_json(msg=problem, answers=answers)
    module.exit_json(changed=False, answers=answers)


if __name__ == "__main__":
    main()
