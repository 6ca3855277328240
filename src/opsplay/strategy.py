"""Which Ansible strategy runs the playbooks: Mitogen's when it supports the installed
ansible-core, the stock ``linear`` strategy otherwise (or when asked).

Mitogen replaces the per-task ``podman exec``/ssh round trips with one persistent interpreter per
host; it works with the connection names it knows (``ssh``, ``podman``, ``local``, ...), and falls
back to stock behaviour for the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata, util

from opsplay.errors import OpsplayError

CHOICES = ("auto", "mitogen", "linear")
# ansible-core lines this Mitogen integration was tested with (ansible_mitogen enforces the minimum)
MITOGEN_CORE_RANGE = ((2, 10), (2, 19))


@dataclass(frozen=True)
class Strategy:
    name: str  # ANSIBLE_STRATEGY
    plugin_dir: str | None  # ANSIBLE_STRATEGY_PLUGINS, None for stock strategies
    reason: str  # shown with -v


def choose(requested: str = "auto") -> Strategy:
    if requested == "linear":
        return Strategy("linear", None, "stock linear strategy (requested)")
    why_not = _mitogen_unusable()
    if why_not is None:
        spec = util.find_spec("ansible_mitogen")
        assert spec is not None and spec.origin is not None
        plugins = os.path.join(os.path.dirname(spec.origin), "plugins", "strategy")
        version = metadata.version("mitogen")
        return Strategy("mitogen_linear", plugins, f"mitogen_linear strategy (mitogen {version})")
    if requested == "mitogen":
        raise OpsplayError(f"--strategy mitogen: {why_not}")
    return Strategy("linear", None, f"stock linear strategy: {why_not}")


def _mitogen_unusable() -> str | None:
    if util.find_spec("ansible_mitogen") is None:
        return "mitogen is not installed"
    core = _version_tuple(metadata.version("ansible-core"))
    low, high = MITOGEN_CORE_RANGE
    if not low <= core[:2] <= high:
        return (
            f"mitogen {metadata.version('mitogen')} is not known to support "
            f"ansible-core {'.'.join(map(str, core))}"
        )
    return None


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
