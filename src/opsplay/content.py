"""Where the Ansible content that ships with opsplay lives (playbooks, roles, ansible.cfg).

A wheel carries it inside the package (``opsplay/_content``); a source checkout (editable
install) uses the repository root. Nothing here imports Ansible.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

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


def source_checkout() -> Path | None:
    """The git checkout opsplay runs from, if any (it holds the example inventories)."""
    root = _PACKAGE_DIR.parent.parent
    return root if (root / "pyproject.toml").is_file() else None
