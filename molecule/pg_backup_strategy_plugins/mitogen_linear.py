"""Mitogen's linear strategy for the scenarios' own plays (verify in every scenario with more than
a few verify tasks; prepare too in the pg_backup ones). Started for the pg_backup scenarios,
hence the directory's name.

Mitogen runs each task in one Python interpreter it keeps per host, instead of the several
``podman exec`` calls a task costs with the stock strategy: the verify plays' hundreds of tasks
are where these scenarios spend their time. It is how opsplay itself runs the roles by default
(src/opsplay/strategy.py). The scenarios' check, converge and idempotence steps (and Molecule's
create and destroy) stay on Ansible's stock linear strategy. molecule.yml puts this directory on
ANSIBLE_STRATEGY_PLUGINS; the plays ask for it with ``strategy: mitogen_linear``.
"""

from __future__ import annotations

import ansible_mitogen.loaders
import ansible_mitogen.strategy

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    """Ansible's linear strategy with Mitogen's connection and module execution."""
