"""Where the Ansible content that ships with opsplay lives: the collection ``opsplay.ops``
(galaxy.yml, playbooks, roles, plugins) and ansible.cfg.

A wheel carries it inside the package (``opsplay/_content``); a source checkout (editable
install) uses the repository root, which is the collection. Nothing here imports Ansible.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from pathlib import Path

COLLECTION = ("opsplay", "ops")

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def content_root() -> Path:
    """The directory holding ``playbooks/``, ``roles/`` and ``ansible.cfg``."""
    for candidate in (_PACKAGE_DIR / "_content", _PACKAGE_DIR.parent.parent):
        if (candidate / "playbooks").is_dir() and (candidate / "ansible.cfg").is_file():
            return candidate
    raise FileNotFoundError(f"opsplay's Ansible content is missing (looked in {_PACKAGE_DIR})")


def playbooks_dir() -> Path:
    return content_root() / "playbooks"


def roles_dir() -> Path:
    return content_root() / "roles"


def ansible_cfg() -> Path:
    return content_root() / "ansible.cfg"


def collections_path(state_dir: Path) -> Path:
    """A collections path where Ansible finds ``opsplay.ops``: the content root linked as
    ``STATE/collections/ansible_collections/opsplay/ops``.

    Ansible loads a collection only from ``ansible_collections/NAMESPACE/NAME`` under a
    collections path, and the content root (checkout or wheel) is the collection itself. The
    link lives in the caller's private state directory (0700), so no other user can point it
    elsewhere; it is replaced atomically when it names another content root (an upgrade, a
    second checkout).
    """
    namespace, name = COLLECTION
    base = state_dir / "collections"
    parent = base / "ansible_collections" / namespace
    for directory in (base, base / "ansible_collections", parent):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)  # each one, not only the last (mkdir(parents=True) would not)
    link, target = parent / name, str(content_root())
    if not (link.is_symlink() and os.readlink(link) == target):
        tmp = parent / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"  # runs in threads
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target, target_is_directory=True)
        tmp.replace(link)
    return base


def source_checkout() -> Path | None:
    """The git checkout opsplay runs from, if any (it holds the example inventories)."""
    root = _PACKAGE_DIR.parent.parent
    return root if (root / "pyproject.toml").is_file() else None
