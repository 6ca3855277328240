"""opsplay envs: the environments with their groups and host counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opsplay.options import JSON_OPTION

if TYPE_CHECKING:
    from opsplay.settings import Settings


@click.command("envs")
@JSON_OPTION
@click.pass_obj
def command(settings: Settings, as_json: bool) -> int:
    """List environments: hosts, groups (with host counts), protection."""
    from opsplay.environment import is_protected, list_environments

    root = settings.inventories()
    envs = list_environments(root)
    rows = [
        {
            "env": env.name,
            "hosts": len(env.hosts),
            "groups": {g: len(h) for g, h in sorted(env.groups.items()) if g != "all"},
            "protected": is_protected(env.name),
            "path": str(env.path),
        }
        for env in envs
    ]
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
        return 0
    click.echo(f"inventories: {root}")
    for row in rows:
        groups = ", ".join(f"{g} ({n})" for g, n in row["groups"].items()) or "-"
        guard = "  [protected]" if row["protected"] else ""
        click.echo(f"{row['env']:<10} {row['hosts']:>3} hosts  {groups}{guard}")
    return 0
