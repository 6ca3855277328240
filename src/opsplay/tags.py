"""The tags opsplay's playbooks and roles define, so that ``--tags``/``--skip-tags`` naming
none of them is refused before a run (exit 2) instead of running only the always-tagged tasks
(ansible-playbook accepts any tag and runs whatever carries it: nothing, for an unknown one)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from opsplay.errors import OpsplayError

# Ansible's own selectors: valid in every playbook
SPECIAL = frozenset({"all", "tagged", "untagged", "always", "never"})


@cache
def defined_tags(root: Path) -> frozenset[str]:
    """Every tag set in the playbooks and roles under ``root`` (the content root)."""
    import yaml

    found: set[str] = set()
    for path in [*root.glob("playbooks/**/*.yml"), *root.glob("roles/*/tasks/*.yml")]:
        try:
            _collect(yaml.safe_load(path.read_text(encoding="utf-8")), found)
        except (OSError, yaml.YAMLError):
            continue  # Ansible itself says what is wrong with a playbook it cannot read
    return frozenset(found)


def _collect(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        tags = node.get("tags")
        if isinstance(tags, str):
            found.update(t.strip() for t in tags.split(","))
        elif isinstance(tags, list):
            found.update(str(t) for t in tags)
        for value in node.values():
            _collect(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect(item, found)


def check_tags(option: str, value: str | None, root: Path) -> None:
    """Refuse a comma-separated tag list naming a tag no playbook or role defines."""
    if not value:
        return
    known = defined_tags(root) | SPECIAL
    unknown = [t for t in (t.strip() for t in value.split(",")) if t and t not in known]
    if unknown:
        own = sorted(defined_tags(root) - SPECIAL)
        raise OpsplayError(
            f"{option} {', '.join(repr(t) for t in unknown)}: no task of opsplay's playbooks "
            f"or roles has {'this tag' if len(unknown) == 1 else 'these tags'} (tags defined: "
            f"{', '.join(own) or 'none'}; Ansible's: {', '.join(sorted(SPECIAL))})"
        )
