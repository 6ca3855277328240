"""Action plugin opsplay.ops.check_arguments: every role's variables checked before any host is
touched, on the controller (no connection, no module transfer), one task execution per host.

Finds each role's ``meta/argument_specs.yml`` on the roles path (ansible.cfg, opsplay,
Molecule), takes the values the host's variables give for the options of the listed entry
point, and checks them as Ansible does at a role's start (plugins/module_utils/
argument_check.py). Options and results: plugins/modules/check_arguments.yml.
"""

from __future__ import annotations

import os

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.opsplay.ops.plugins.module_utils import argument_check

SPEC_FILES = ("argument_specs.yml", "argument_specs.yaml")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=argument_check.ARGUMENT_SPEC)
        results = []
        for item in args["roles"]:
            role, entry_point = item["role"], item["entry_point"]
            options = self._options(role, entry_point)
            values = {name: task_vars[name] for name in options if name in task_vars}
            results.append(
                argument_check.check(role, entry_point, options, self._templar.template(values))
            )
        result.update(argument_check.summary(results))
        return result

    def _options(self, role: str, entry_point: str) -> dict:
        """The entry point's options from the first spec file found on the roles path."""
        for directory in C.config.get_config_value("DEFAULT_ROLES_PATH"):
            for name in SPEC_FILES:
                path = os.path.join(directory, role, "meta", name)
                if os.path.isfile(path):
                    data = self._loader.load_from_file(path) or {}
                    try:
                        return argument_check.given_options(
                            data.get("argument_specs") or {}, entry_point
                        )
                    except KeyError:
                        raise AnsibleError(
                            f"role {role} has no argument spec for entry point {entry_point}"
                            f" ({path})"
                        ) from None
        raise AnsibleError(f"role {role}: no meta/argument_specs.yml on the roles path")
