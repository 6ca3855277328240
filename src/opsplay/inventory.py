"""What an environment's inventory holds, as ansible-core itself reads it.

An environment is a directory (``INVENTORY_DIR/ENV/``) holding whatever Ansible reads there: INI
or YAML files under any name, inventory plugin configurations (``constructed``, a cloud
plugin), executable scripts, sub-directories, next to ``group_vars/`` and ``host_vars/``. opsplay
never parses them itself: its inventory sources are the directory's entries that Ansible's own
directory walk would read (same ignore rules), less opsplay's own files (``schedule.yml``), and
the same list is what every run passes to ansible-playbook (``-i`` once per source), so
``opsplay hosts`` shows exactly the hosts a run targets.

A source no plugin can parse is an error naming the file and Ansible's reason, where Ansible
would only warn and go on with fewer hosts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsplay.errors import OpsplayError

# opsplay's own files in an environment directory (schedules, maintenance calendar): not
# inventory sources.
OPSPLAY_FILES = frozenset({"schedule.yml", "schedule.yaml", "calendar.yml", "calendar.yaml"})

# ansible-core's module-level display is swapped while one thread resolves an inventory.
_RESOLVING = threading.RLock()


@dataclass(frozen=True)
class Inventory:
    """The hosts of every group (children included), as Ansible resolves them."""

    sources: tuple[Path, ...]
    groups: dict[str, frozenset[str]]
    _manager: Any = field(default=None, repr=False, compare=False)
    # from the cache (no manager): how to resolve with ansible-core when a pattern needs it
    _env_dir: Path | None = field(default=None, repr=False, compare=False)

    @property
    def hosts(self) -> list[str]:
        return sorted(self.groups.get("all", frozenset()))

    def matching(self, pattern: str) -> list[str]:
        """The hosts an Ansible host pattern (``--limit``: groups, globs, ``!``, ``&``,
        ``@file``) selects, by ansible-core's own matching. From the cache, a list of group
        and host names is matched here; any other pattern, or one matching nothing here,
        is matched by ansible-core."""
        manager = self._manager
        if manager is None:
            simple = _names_matching(self.groups, pattern)
            if simple or self._env_dir is None:
                return simple
            manager = _resolve(self._env_dir)[0]._manager
        with _quiet_manager():
            manager.subset(pattern)
            try:
                return sorted(host.name for host in manager.get_hosts("all"))
            finally:
                manager.subset(None)

    def host_groups(self) -> dict[str, set[str]]:
        """Each host with the groups it is in (``all`` included)."""
        found: dict[str, set[str]] = {host: set() for host in self.hosts}
        for group, members in self.groups.items():
            for host in members:
                found.setdefault(host, set()).add(group)
        return found


def inventory_sources(env_dir: Path) -> list[Path]:
    """The files under ``env_dir`` Ansible's directory walk would read as inventory (its order,
    its ignore rules: hidden files, ``group_vars``, ``host_vars``, ignored extensions and
    patterns from its configuration), without opsplay's own files. Files one by one, so that
    one that cannot be parsed is named, where Ansible would parse the others and warn."""
    from ansible.inventory.manager import IGNORED

    found: list[Path] = []
    for entry in sorted(env_dir.iterdir()):
        if entry.name in OPSPLAY_FILES or IGNORED.search(entry.name.encode()):
            continue
        found.extend(inventory_sources(entry) if entry.is_dir() else [entry])
    return found


def resolve(env_dir: Path, cache_dir: Path | None = None) -> Inventory:
    """Resolve the inventory of one environment directory with ansible-core's InventoryManager.

    With ``cache_dir`` (the state directory's cache), an environment of static INI/YAML files
    whose fingerprint is unchanged comes from the cache without importing ansible-core
    (``opsplay.inventory_cache``), and one resolved here is stored there.

    Raises OpsplayError (one line: the file and Ansible's reason) when a source cannot be
    parsed."""
    if cache_dir is None:
        return _resolve(env_dir)[0]
    from opsplay import inventory_cache

    key = inventory_cache.fingerprint(env_dir)
    cached = inventory_cache.load(cache_dir, env_dir, key)
    if cached is not None:
        sources, groups = cached
        return Inventory(
            sources=tuple(sources),
            groups={name: frozenset(hosts) for name, hosts in groups.items()},
            _env_dir=env_dir,
        )
    inventory, static = _resolve(env_dir)
    # stored only if nothing changed while ansible-core read it
    if static and inventory.sources and inventory_cache.fingerprint(env_dir) == key:
        members = {name: sorted(hosts) for name, hosts in inventory.groups.items()}
        inventory_cache.store(cache_dir, env_dir, key, list(inventory.sources), members)
    return inventory


# ansible-core's plugins that read a file's hosts and groups from the file alone
_STATIC_PLUGINS = frozenset({"ini", "yaml"})


def _resolve(env_dir: Path) -> tuple[Inventory, bool]:
    """The inventory as ansible-core resolves it, and whether every source was parsed by a
    static plugin (INI, YAML: the result depends on the files alone, so it may be cached)."""
    sources = inventory_sources(env_dir)
    if not sources:
        return Inventory(sources=(), groups={}), False
    from ansible.errors import AnsibleError
    from ansible.inventory import manager as ansible_manager
    from ansible.parsing.dataloader import DataLoader

    with _quiet_manager() as recorder:
        _load_collections()
        try:
            inventory = ansible_manager.InventoryManager(
                loader=DataLoader(), sources=[str(s) for s in sources], parse=False
            )
            for source in sources:
                recorder.failures.clear()
                try:
                    parsed = inventory.parse_source(str(source))
                except AnsibleError:  # "completely failed to parse" (any_unparsed_is_failed)
                    parsed = False
                if not parsed:
                    raise OpsplayError(_failure_line(source, recorder.failures))
            inventory._inventory.reconcile_inventory()
        except OpsplayError:
            raise
        except Exception as exc:  # a plugin raising outside its parse(): still Ansible's reason
            raise OpsplayError(f"cannot read inventory {env_dir}: {_first_line(exc)}") from None
    groups = {
        name: frozenset(host.name for host in group.get_hosts())
        for name, group in inventory.groups.items()
    }
    # groups without hosts (e.g. an empty 'ungrouped') say nothing about what a run targets
    groups = {name: hosts for name, hosts in groups.items() if hosts or name == "all"}
    static = len(recorder.parsed_by) == len(sources) and all(
        recorder.parsed_by.get(str(source)) in _STATIC_PLUGINS for source in sources
    )
    return Inventory(sources=tuple(sources), groups=groups, _manager=inventory), static


# A --limit the cache answers alone: group or host names, comma-separated
_NAMES = re.compile(r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")


def _names_matching(groups: dict[str, frozenset[str]], pattern: str) -> list[str]:
    """The hosts of the groups and the hosts a list of plain names selects, as ansible-core
    matches a name without pattern characters (a group's hosts, and a host of that name);
    [] when the pattern is anything else or selects nothing (ansible-core then decides)."""
    pattern = pattern.strip()
    if not _NAMES.match(pattern):
        return []
    every = groups.get("all", frozenset())
    found: set[str] = set()
    for name in pattern.split(","):
        found |= groups.get(name, frozenset())
        if name in every:
            found.add(name)
    return sorted(found)


@contextmanager
def _quiet_manager() -> Iterator[_FailureRecorder]:
    """One thread at a time, ansible-core's inventory manager talks to a recorder instead of
    the terminal (its warnings are either failures opsplay reports in one line, or noise)."""
    from ansible.inventory import manager as ansible_manager

    recorder = _FailureRecorder()
    with _RESOLVING:
        real_display = ansible_manager.display
        ansible_manager.display = recorder  # type: ignore[assignment]
        try:
            yield recorder
        finally:
            ansible_manager.display = real_display


def _load_collections() -> None:
    """Let ansible-core load plugins from collections (ansible.builtin.constructed, a cloud
    plugin) in this process, as its own CLIs do at start-up; once per process."""
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if AnsibleCollectionConfig.collection_finder is None:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()


class _FailureRecorder:
    """Stands in for ansible-core's display in the inventory manager: keeps each plugin's
    failure (Ansible would print them as warnings) and says nothing else."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, BaseException]] = []
        self.parsed_by: dict[str, str] = {}  # source -> the plugin that parsed it

    def error_as_warning(self, msg: str, exception: BaseException, **_: Any) -> None:
        self.failures.append((msg, exception))

    def vvv(self, msg: str, *_: Any, **__: Any) -> None:
        parsed = _PARSED.match(str(msg))
        if parsed:
            plugin = parsed.group(2).removeprefix("ansible.builtin.")
            self.parsed_by[parsed.group(1)] = plugin

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


# ansible-core's line after a plugin parsed a source (InventoryManager.parse_source)
_PARSED = re.compile(r"^Parsed (.+) inventory source with (\S+) plugin$")

# Plugins that try every file and say only that it is not theirs: their reasons come last.
_GENERIC = re.compile(
    r"(does not have a valid extension|not a valid|expected file extension)", re.I
)


def _failure_line(source: Path, failures: list[tuple[str, BaseException]]) -> str:
    if not failures:
        return f"malformed inventory {source}: no enabled inventory plugin accepts this file"
    reasons = [_first_line(exc) for _, exc in failures]
    reasons.sort(key=lambda reason: bool(_GENERIC.search(reason)))
    return f"malformed inventory {source}: {reasons[0]}"


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
