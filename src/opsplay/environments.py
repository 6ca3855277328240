"""Environments: one inventory directory each (``inventories/ENV/hosts.yml`` + ``group_vars/``).

The YAML inventory is read here, without Ansible, so that ``opsplay envs`` and ``hosts`` are
fast and a malformed inventory is reported in one line before any run starts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsplay.content import source_checkout
from opsplay.errors import OpsplayError

INVENTORY_FILES = ("hosts.yml", "hosts.yaml")
_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RANGE = re.compile(r"\[([0-9]+):([0-9]+)\]")


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
    name: str
    path: Path
    groups: dict[str, set[str]] = field(default_factory=dict)
    host_groups: dict[str, set[str]] = field(default_factory=dict)

    @property
    def inventory_file(self) -> Path | None:
        for name in INVENTORY_FILES:
            if (self.path / name).is_file():
                return self.path / name
        return None

    @property
    def hosts(self) -> list[str]:
        return sorted(self.host_groups)


def list_environments(root: Path) -> list[Environment]:
    envs = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and _ENV_NAME.match(child.name):
            envs.append(load_environment(root, child.name, require_hosts=False))
    return envs


def load_environment(root: Path, name: str, *, require_hosts: bool = True) -> Environment:
    if not _ENV_NAME.match(name):
        raise OpsplayError(f"invalid environment name '{name}'")
    path = root / name
    if not path.is_dir():
        known = ", ".join(e.name for e in list_environments(root)) or "none"
        raise OpsplayError(f"unknown environment '{name}' in {root} (known: {known})")
    env = Environment(name=name, path=path)
    inventory = env.inventory_file
    if inventory is None:
        if require_hosts:
            hint = " (run 'opsplay lab up' first)" if name == "lab" else ""
            raise OpsplayError(f"environment '{name}' has no hosts.yml in {path}{hint}")
        return env
    env.groups = parse_inventory(inventory)
    for group, members in env.groups.items():
        for host in members:
            env.host_groups.setdefault(host, set()).add(group)
    if require_hosts and not env.host_groups:
        raise OpsplayError(f"environment '{name}' has no hosts ({inventory})")
    return env


def parse_inventory(path: Path) -> dict[str, set[str]]:
    """Map every group of a YAML inventory to the hosts in it, children included."""
    import yaml  # not needed for --help: keep start-up fast

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise OpsplayError(f"malformed inventory {path}{where}: {problem}") from None
    except OSError as exc:
        raise OpsplayError(f"cannot read inventory {path}: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OpsplayError(f"malformed inventory {path}: top level must be a mapping of groups")
    direct: dict[str, set[str]] = {}
    children: dict[str, set[str]] = {}
    _walk_groups(path, data, direct, children)
    return {group: _members(group, direct, children, set()) for group in direct}


def _walk_groups(
    path: Path,
    groups: dict[str, Any],
    direct: dict[str, set[str]],
    children: dict[str, set[str]],
) -> None:
    for group, body in groups.items():
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise OpsplayError(f"malformed inventory {path}: group '{group}' must be a mapping")
        unknown = set(body) - {"hosts", "children", "vars"}
        if unknown:
            raise OpsplayError(
                f"malformed inventory {path}: group '{group}' has unknown key(s) "
                f"{', '.join(sorted(map(str, unknown)))} (expected hosts, children, vars)"
            )
        for key in ("hosts", "children", "vars"):
            if body.get(key) is not None and not isinstance(body[key], dict):
                raise OpsplayError(f"malformed inventory {path}: '{group}.{key}' must be a mapping")
        hosts = direct.setdefault(str(group), set())
        for host in body.get("hosts") or {}:
            hosts.update(_expand(str(host)))
        sub = body.get("children") or {}
        children.setdefault(str(group), set()).update(map(str, sub))
        _walk_groups(path, sub, direct, children)


def _members(group: str, direct: dict, children: dict, seen: set[str]) -> set[str]:
    if group in seen:
        return set()
    seen.add(group)
    hosts = set(direct.get(group, ()))
    for child in children.get(group, ()):
        hosts |= _members(child, direct, children, seen)
    return hosts


def _expand(pattern: str) -> list[str]:
    """Expand Ansible's numeric host ranges (``web[01:03]``); other names pass through."""
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    start, end = match.group(1), match.group(2)
    width = len(start) if start.startswith("0") else 0
    names = []
    for number in range(int(start), int(end) + 1):
        name = pattern[: match.start()] + str(number).zfill(width) + pattern[match.end() :]
        names.extend(_expand(name))
    return names


def is_protected(name: str) -> bool:
    """Environments whose every non-check run needs confirmation (OPSPLAY_PROTECTED_ENVS)."""
    configured = os.environ.get("OPSPLAY_PROTECTED_ENVS", "prod,production")
    return name in {item.strip() for item in configured.split(",") if item.strip()}
