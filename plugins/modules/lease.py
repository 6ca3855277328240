#!/usr/bin/python3
"""Ansible module opsplay.ops.lease: take or release this run's lease on a host (issue 18).

The first play of every playbook that changes hosts takes it (playbooks/tasks/gates.yml), the
last play releases it; ``opsplay unlock`` breaks it (force). Decisions and the file's format:
plugins/module_utils/lease.py; options and results: lease.yml beside this file.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import lease

ARGUMENT_SPEC = {
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "controller": {"type": "str", "required": True},
    "user": {"type": "str", "required": True},
    "run_id": {"type": "str", "required": True},
    "what": {"type": "str", "default": ""},
    "ttl": {"type": "int", "default": lease.DEFAULT_TTL},
    "lock": {"type": "str", "default": ""},
    "force": {"type": "bool", "default": False},
    "path": {"type": "str", "default": lease.LEASE_PATH},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    identity = {k: p[k] for k in ("controller", "user", "run_id", "what", "lock")}
    try:
        if p["state"] == "present":
            if p["ttl"] < 1:
                module.fail_json(msg="lease ttl must be at least 1 second, got {}".format(p["ttl"]))
            taken, changed, found, now_held, line = lease.take(
                p["path"], identity, p["ttl"], check=module.check_mode
            )
            result = {"changed": changed, "lease": now_held, "previous": found, "msg": line}
            if not taken:
                module.fail_json(refused=True, **result)
            module.exit_json(refused=False, **result)
        released, found, line = lease.release(
            p["path"], identity, force=p["force"], check=module.check_mode
        )
        module.exit_json(changed=released, released=released, previous=found, msg=line)
    except lease.LeaseError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
