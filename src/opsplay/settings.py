"""Where opsplay finds its inventories and keeps its state, and how it runs: one object shared
by the CLI (its root options, through click's ctx.obj) and the library (``opsplay.Settings``).

Kept free of heavy imports: it is loaded for every command, ``--help`` included.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


@dataclass
class Settings:
    """opsplay's settings. ``Settings.from_env()`` reads the same ``OPSPLAY_*`` variables as
    the CLI; every field left None takes the CLI's default.

    - ``inventory_dir``: the directory holding one inventory directory per environment
      (``OPSPLAY_INVENTORY_DIR``; default ``./inventories``, then the checkout's).
    - ``state_dir``: run history and locks (``OPSPLAY_STATE_DIR``; default
      ``~/.local/state/opsplay``).
    - ``history_keep``: runs kept in the history (``OPSPLAY_HISTORY_KEEP``, 50).
    - ``strategy``: ``auto``, ``mitogen`` or ``linear`` (``OPSPLAY_STRATEGY``).
    - ``vault_password_file``: Ansible Vault password file (``OPSPLAY_VAULT_PASSWORD_FILE``).
    """

    inventory_dir: str | None = None
    state_dir: str | None = None
    history_keep: int = 50
    strategy: str = "auto"
    vault_password_file: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from the ``OPSPLAY_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        keep = env.get("OPSPLAY_HISTORY_KEEP") or "50"
        if not keep.isdigit() or int(keep) < 1:
            from opsplay.errors import BadInput

            raise BadInput(f"OPSPLAY_HISTORY_KEEP={keep} is not a positive number of runs")
        return cls(
            inventory_dir=env.get("OPSPLAY_INVENTORY_DIR") or None,
            state_dir=env.get("OPSPLAY_STATE_DIR") or None,
            history_keep=int(keep),
            strategy=env.get("OPSPLAY_STRATEGY") or "auto",
            vault_password_file=env.get("OPSPLAY_VAULT_PASSWORD_FILE") or None,
        )

    def inventories(self) -> Path:
        """The inventory directory (an OpsplayError when there is none)."""
        from opsplay.environment import inventory_root

        return inventory_root(self.inventory_dir)

    def state(self) -> Path:
        """The state directory (not created here)."""
        from opsplay.state import state_root

        return state_root(self.state_dir)
