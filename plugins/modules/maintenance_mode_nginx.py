#!/usr/bin/python3
"""Ansible module opsplay.ops.maintenance_mode_nginx:
the maintenance snippet and its includes, only with a passing nginx -t.

What it decides and does, its options and its results: maintenance_mode_nginx.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.maintenance_nginx import (  # noqa: F401
    apply,
    include_line,
    nginx_error,
    plan,
    read_bytes,
    restore,
    snapshot,
    with_include,
    write_bytes,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "snippet_path": {"type": "path", "required": True},
            "snippet_content": {"type": "str", "required": True},
            "sites": {"type": "list", "elements": "path", "default": []},
            "test_command": {"type": "list", "elements": "str", "default": ["nginx", "-t"]},
        },
        supports_check_mode=True,
    )
    params = module.params
    # Sites are often symlinks (sites-enabled -> sites-available): change the file itself.
    sites = [os.path.realpath(site) for site in params["sites"]]
    snippet = os.path.realpath(params["snippet_path"])
    changes, problems = plan(snippet, params["snippet_content"], sites, read_bytes)
    if problems:
        module.fail_json(msg="; ".join(problems))
    if not changes or module.check_mode:
        module.exit_json(changed=bool(changes), files=sorted(changes))
    failure = apply(changes, params["test_command"])
    if failure:
        module.fail_json(msg=failure, files=sorted(changes))
    module.exit_json(changed=True, files=sorted(changes))


if __name__ == "__main__":
    main()
