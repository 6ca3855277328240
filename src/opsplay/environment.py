"""Environments: one inventory directory each (``INVENTORY_DIR/ENV/``), holding whatever
Ansible reads as inventory there, resolved by ansible-core (``opsplay.inventory``) before any run
starts, so that a malformed inventory is reported in one line and ``opsplay hosts`` shows the
hosts a run targets.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opsplay.content import source_checkout
from opsplay.errors import OpsplayError

if TYPE_CHECKING:
    from opsplay.inventory import Inventory

_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def inventory_root(explicit: str | Path | None) -> Path:
    """The directory holding one sub-directory per environment."""
    if explicit:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise OpsplayError(f"inventory directory {root} does not exist")
        return root
    cwd_inventories = Path.cwd() / "inventories"
    if cwd_inventories.is_dir():
        return cwd_inventories
    checkout = source_checkout()
    if checkout and (checkout / "inventories").is_dir():
        return checkout / "inventories"
    raise OpsplayError("no inventory directory: pass --inventory-dir or set OPSPLAY_INVENTORY_DIR")


@dataclass
class Environment:
    """One environment: its directory, the inventory sources in it and what Ansible resolves
    from them (``opsplay.inventory``)."""

    name: str
    path: Path
    sources: tuple[Path, ...] = ()
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    host_groups: dict[str, set[str]] = field(default_factory=dict)
    inventory: Inventory | None = field(default=None, repr=False, compare=False)

    @property
    def hosts(self) -> list[str]:
        return sorted(self.host_groups)

    def check_limit(self, limit: str | None) -> None:
        """Refuse a ``--limit`` that selects no host of this environment (bad input), where
        ansible-playbook would only say so after starting, in its own words."""
        if not limit or self.inventory is None or self.inventory.matching(limit):
            return
        groups = ", ".join(sorted(g for g in self.groups if g not in ("all", "ungrouped")))
        raise OpsplayError(
            f"--limit '{limit}' matches no host of environment '{self.name}' "
            f"(its groups: {groups or 'none'}; opsplay hosts --env {self.name} lists its hosts)"
        )


def environment_names(root: Path) -> list[str]:
    """The environments of an inventory directory: its sub-directories with a valid name."""
    return [c.name for c in sorted(root.iterdir()) if c.is_dir() and _ENV_NAME.match(c.name)]


def list_environments(root: Path) -> list[Environment]:
    return [load_environment(root, name, require_hosts=False) for name in environment_names(root)]


def load_environment(
    root: Path, name: str, *, require_hosts: bool = True, cache_dir: Path | None = None
) -> Environment:
    """The environment ``name`` of ``root``, its inventory resolved; with ``cache_dir``, from
    the inventory cache while its files are unchanged (``opsplay.inventory_cache``)."""
    from opsplay.inventory import resolve  # imports ansible-core (on a cache miss)

    if not _ENV_NAME.match(name):
        raise OpsplayError(f"invalid environment name '{name}'")
    path = root / name
    if not path.is_dir():
        known = ", ".join(environment_names(root)) or "none"  # names only: nothing resolved
        raise OpsplayError(f"unknown environment '{name}' in {root} (known: {known})")
    inventory = resolve(path, cache_dir)
    env = Environment(
        name=name,
        path=path,
        sources=inventory.sources,
        groups=dict(inventory.groups),
        inventory=inventory,
    )
    env.host_groups = inventory.host_groups()
    if require_hosts and not inventory.sources:
        hint = " (run 'opsplay lab up' first)" if name == "lab" else ""
        raise OpsplayError(f"environment '{name}' has no inventory in {path}{hint}")
    if require_hosts and not env.host_groups:
        raise OpsplayError(f"environment '{name}' has no hosts (inventory {path})")
    return env


def is_protected(name: str) -> bool:
    """Environments whose every non-check run needs confirmation (OPSPLAY_PROTECTED_ENVS)."""
    configured = os.environ.get("OPSPLAY_PROTECTED_ENVS", "prod,production")
    return name in {item.strip() for item in configured.split(",") if item.strip()}
