#!/usr/bin/python3
"""Ansible module opsplay.ops.pg_maintenance_report: the last step of roles/pg_maintenance, on
the control node (delegate_to localhost).

What it decides and does, its options and its results: pg_maintenance_report.yml beside it
(sidecar documentation, read by ansible-doc).
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import pg_maintenance_report as report


def own_result(results: list, host: str) -> dict:
    """This host's result among the run's (an empty one when it has none)."""
    for result in results:
        if result["report"]["host"] == host:
            return result
    return {"failures": [], "msg": "no report of %s" % host}


def main():
    module = AnsibleModule(
        argument_spec={
            "results": {"type": "list", "elements": "dict", "required": True},
            "host": {"type": "str", "required": True},
            "env": {"type": "str", "required": True},
            "directory": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    results = p["results"]
    run = report.run_report(results, p["env"]) if results else None
    paths = []
    # Written once per run, by the first host with a report (the others' calls read only).
    if run is not None and results[0]["report"]["host"] == p["host"]:
        try:
            paths = report.save(p["directory"], p["env"], run)
        except OSError as exc:
            module.fail_json(
                msg="cannot write the report under %s: %s" % (p["directory"], exc.strerror or exc)
            )
    mine = own_result(results, p["host"])
    if mine["failures"]:
        module.fail_json(msg="; ".join(mine["failures"]), report=run, paths=paths)
    module.exit_json(changed=False, msg=mine["msg"], report=run, paths=paths)


if __name__ == "__main__":
    main()
