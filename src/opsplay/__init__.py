"""opsplay: operations runbooks as tested, idempotent Ansible roles and playbooks, run through
a thin CLI, and usable as a Python library:

    import opsplay

    result = opsplay.run("backup", env="prod", confirm=True)
    failed = {h: r for h, r in result.hosts.items() if r.failed or r.unreachable}

The functions and types below are loaded on first use (``opsplay.api``), so ``import opsplay``
costs no more than importing click: Ansible and ansible-runner load only when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Backup",
    "BadInput",
    "Environment",
    "Event",
    "FleetStatus",
    "Host",
    "HostResult",
    "Interrupted",
    "Locked",
    "NotConfirmed",
    "OpsplayError",
    "OutsideWindow",
    "Procedure",
    "RunRecord",
    "RunResult",
    "Settings",
    "backups",
    "environments",
    "history",
    "hosts",
    "maintenance",
    "procedures",
    "run",
    "status",
]

# name -> the module that defines it
_API = (
    "Backup",
    "Event",
    "FleetStatus",
    "Host",
    "HostResult",
    "RunResult",
    "backups",
    "environments",
    "history",
    "hosts",
    "maintenance",
    "procedures",
    "run",
    "status",
)
_ERRORS = ("BadInput", "Interrupted", "Locked", "NotConfirmed", "OpsplayError", "OutsideWindow")
_WHERE = {
    **dict.fromkeys(_API, "opsplay.api"),
    **dict.fromkeys(_ERRORS, "opsplay.errors"),
    "Settings": "opsplay.settings",
    "Environment": "opsplay.environment",
    "RunRecord": "opsplay.state",
    "Procedure": "opsplay.playbooks",
}

if TYPE_CHECKING:
    from opsplay.api import (
        Backup,
        Event,
        FleetStatus,
        Host,
        HostResult,
        RunResult,
        backups,
        environments,
        history,
        hosts,
        maintenance,
        procedures,
        run,
        status,
    )
    from opsplay.environment import Environment
    from opsplay.errors import (
        BadInput,
        Interrupted,
        Locked,
        NotConfirmed,
        OpsplayError,
        OutsideWindow,
    )
    from opsplay.playbooks import Procedure
    from opsplay.settings import Settings
    from opsplay.state import RunRecord


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'opsplay' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
