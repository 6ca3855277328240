"""A cache of resolved inventories, so a run whose inventory has not changed imports no
ansible-core in the opsplay process (issue 20: 0.3-0.5 s of every run's start; issue 19: the
controller's memory).

Only an environment whose every source was parsed by ansible-core's static ``ini`` or ``yaml``
plugin is stored (``opsplay.inventory`` decides): a script, a plugin configuration
(``constructed``, a cloud plugin) or anything else is resolved by ansible-core on every run, as
before. An entry is used only while its fingerprint is the same: every entry of the environment
directory that Ansible's directory walk may read (path, type, mode, size, mtime_ns, a link's
target; hidden entries, ``group_vars``, ``host_vars`` and ``vars_plugins`` are never inventory),
the Ansible configuration files ansible-core would read in this process and every ``ANSIBLE_*``
variable (ignore patterns, enabled plugins), the installed ansible-core, Python, and opsplay's
inventory code. Entries live under ``STATE/cache/inventory/`` (0700), one 0600 JSON file per
environment directory, written atomically (temporary file, rename). A damaged or foreign entry
is ignored (resolved again and replaced). Nothing here imports Ansible.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import threading
from importlib import util
from pathlib import Path

from opsplay import __version__
from opsplay.state import private_dir

# Ansible's directory walk never reads these as inventory (IGNORED_ALWAYS in
# ansible.inventory.manager); every other entry may be, depending on the configuration.
_ALWAYS_IGNORED = frozenset({"host_vars", "group_vars", "vars_plugins"})
_FORMAT = 1


def fingerprint(env_dir: Path) -> str:
    """What decides the resolved inventory of ``env_dir`` besides the files' contents."""
    parts: list[object] = [_FORMAT, __version__, sys.version, _file_key(Path(__file__))]
    parts.append(_file_key(Path(__file__).with_name("inventory.py")))
    spec = util.find_spec("ansible")  # locates the package without importing it
    if spec is not None and spec.origin is not None:
        parts.append(_file_key(Path(spec.origin).with_name("release.py")))
    parts.append(sorted((k, v) for k, v in os.environ.items() if k.startswith("ANSIBLE_")))
    parts.append([_file_key(path) for path in _config_candidates()])
    parts.append(_file_key(Path.cwd()))  # a world-writable cwd makes Ansible skip ./ansible.cfg
    parts.append(_tree(env_dir))
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def load(
    cache_dir: Path, env_dir: Path, key: str
) -> tuple[list[Path], dict[str, list[str]]] | None:
    """The sources and groups stored for ``env_dir`` under ``key``; None when there are none
    (or the entry is damaged, or from another fingerprint)."""
    try:
        data = json.loads(_entry(cache_dir, env_dir).read_text(encoding="utf-8"))
        if data["fingerprint"] != key or data["env_dir"] != str(env_dir):
            return None
        sources = [Path(s) for s in data["sources"]]
        groups = {str(g): [str(h) for h in hosts] for g, hosts in data["groups"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return sources, groups


def store(
    cache_dir: Path, env_dir: Path, key: str, sources: list[Path], groups: dict[str, list[str]]
) -> None:
    """Keep a resolved inventory; a cache that cannot be written is no error (the next run
    resolves again)."""
    document = {
        "fingerprint": key,
        "env_dir": str(env_dir),
        "sources": [str(s) for s in sources],
        "groups": {g: sorted(hosts) for g, hosts in groups.items()},
    }
    try:
        path = _entry(cache_dir, env_dir)
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        os.replace(tmp, path)
    except Exception:  # OpsplayError from private_dir, OSError: only a cache
        return


def _entry(cache_dir: Path, env_dir: Path) -> Path:
    name = hashlib.sha256(str(env_dir).encode()).hexdigest()[:32]
    return cache_dir / "inventory" / f"{name}.json"


def _config_candidates() -> list[Path]:
    """Every file ansible-core's configuration search may read in this process
    (ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg)."""
    found = []
    explicit = os.environ.get("ANSIBLE_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        found += [path, path / "ansible.cfg"]
    found += [Path.cwd() / "ansible.cfg", Path("~/.ansible.cfg").expanduser()]
    found.append(Path("/etc/ansible/ansible.cfg"))
    return found


def _file_key(path: Path) -> list[object]:
    try:
        info = path.stat()
    except OSError:
        return [str(path), None]
    link = os.readlink(path) if path.is_symlink() else None
    if stat.S_ISDIR(info.st_mode):  # its entries are listed: its mtime says no more
        return [str(path), info.st_mode, link]
    return [str(path), info.st_mode, info.st_size, info.st_mtime_ns, info.st_ino, link]


def _tree(directory: Path) -> list[object]:
    """Every entry below ``directory`` that may be an inventory source, with its key;
    directories recursively (a sub-directory's entries are sources too)."""
    found: list[object] = [_file_key(directory)]
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        return [*found, f"unreadable: {exc.errno}"]
    for entry in entries:
        if entry.name.startswith(".") or entry.name in _ALWAYS_IGNORED:
            continue
        found.append(_file_key(entry))
        if entry.is_dir():
            found.append(_tree(entry))
    return found
