"""Action plugin opsplay.ops.pg_maintenance_report: the last task of roles/pg_maintenance, run
inside ansible-playbook on the control node.

The module of the same name did this delegated to localhost: under Mitogen each such task opened
a local context first (~0.45 s of a 4.1 s `opsplay run vacuum` with nothing to do, issue 20). As
an action plugin it writes the run's report and judges the host in the controller's worker, with
no connection, no module transfer and no interpreter start. The work itself is
plugins/module_utils/pg_maintenance_report.py (``conclude``), shared with the module; the options
and results are the module's documentation (plugins/modules/pg_maintenance_report.yml).
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible_collections.opsplay.ops.plugins.module_utils import pg_maintenance_report as report


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=report.ARGUMENT_SPEC)
        directory = os.path.expanduser(os.path.expandvars(args["directory"]))
        result.update(report.conclude(args["results"], args["host"], args["env"], directory))
        return result
