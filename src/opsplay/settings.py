"""Global settings of one CLI invocation (root group options), shared through click's ctx.obj.

Kept free of heavy imports: it is loaded for every command, ``--help`` included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class Settings:
    def __init__(
        self,
        inventory_dir: str | None = None,
        state_dir: str | None = None,
        history_keep: int = 50,
    ) -> None:
        self.inventory_dir = inventory_dir
        self.state_dir = state_dir
        self.history_keep = history_keep

    def inventories(self) -> Path:
        from opsplay.environments import inventory_root

        return inventory_root(self.inventory_dir)

    def state(self) -> Path:
        from opsplay.state import state_root

        return state_root(self.state_dir)
