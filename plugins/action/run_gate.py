"""Action plugin opsplay.ops.run_gate: the calendar gate and the lease's holder, on the
controller, once per run (``run_once``): no connection, no module transfer, one task execution.

The decision is plugins/module_utils/run_gate.py (``decide``), whose calendar code is the CLI's
(plugins/module_utils/maintenance_calendar.py); the options and results are the module's
documentation (plugins/modules/run_gate.yml).
"""

from __future__ import annotations

import datetime

from ansible.plugins.action import ActionBase
from ansible_collections.opsplay.ops.plugins.module_utils import run_gate


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=run_gate.ARGUMENT_SPEC)
        at = datetime.datetime.now(datetime.timezone.utc)
        result.update(run_gate.decide(args, at, check=bool(self._task.check_mode)))
        return result
