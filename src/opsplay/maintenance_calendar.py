"""An environment's maintenance calendar: ``INVENTORY_DIR/ENV/calendar.yml`` (optional).

The decisions (is a run allowed now, and why not; the next window) are made in ONE place, the
collection's ``plugins/module_utils/maintenance_calendar.py`` (format and daylight-saving rules
documented there), shared with the playbooks' run gate so that AWX and plain ansible-playbook
runs honour the same calendar: the CLI and the library refuse a disruptive run outside its
window before touching a host, ``opsplay schedule show``/``check`` print the decisions, and the
schedule's timers are generated from the windows' starts. This module reads the file and turns
the shared code's errors into opsplay's one-line errors (exit 2).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplay.errors import OpsplayError

if TYPE_CHECKING:  # the shared module, seen by type checkers
    from types import ModuleType


def _shared() -> ModuleType:
    """plugins/module_utils/maintenance_calendar.py of the collection opsplay ships (checkout
    or wheel), loaded by path: Ansible's collection loader is not needed for plain Python."""
    name = "opsplay._shared_maintenance_calendar"
    if name in sys.modules:
        return sys.modules[name]
    from opsplay.content import content_root

    path = content_root() / "plugins" / "module_utils" / "maintenance_calendar.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_impl = _shared()
CALENDAR_FILE = "calendar.yml"
SCHEDULES = _impl.SCHEDULES
QUARTER_MONTHS = _impl.QUARTER_MONTHS
DAYS = _impl.DAYS
Window = _impl.Window
Freeze = _impl.Freeze
Occurrence = _impl.Occurrence
Decision = _impl.Decision
Calendar = _impl.Calendar
CalendarError = _impl.CalendarError
local_zone_name = _impl.local_zone_name
to_data = _impl.to_data
refusal = _impl.refusal
gate = _impl.gate


def load(env_dir: Path) -> Any:
    """The calendar of an environment directory, or None when it has none."""
    path = env_dir / CALENDAR_FILE
    if not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise OpsplayError(f"malformed {path}{where}") from None
    return parse(data, str(path))


def parse(data: Any, where: str = CALENDAR_FILE) -> Any:
    """A calendar from its YAML data; one-line errors (exit 2) naming ``where`` and the entry."""
    try:
        return _impl.parse(data, where)
    except CalendarError as exc:
        raise OpsplayError(str(exc)) from None
