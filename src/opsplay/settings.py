"""Global settings of one CLI invocation (root group options), shared through click's ctx.obj."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opsplay.environments import inventory_root
from opsplay.state import state_root


@dataclass
class Settings:
    inventory_dir: str | None = None
    state_dir: str | None = None
    history_keep: int = 50
    debug: bool = False

    def inventories(self) -> Path:
        return inventory_root(self.inventory_dir)

    def state(self) -> Path:
        return state_root(self.state_dir)
