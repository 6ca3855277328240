"""opsplay hosts --env ENV: the hosts an environment resolves to, with their groups."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from opsplay.settings import Settings

from opsplay.options import JSON_OPTION, env_option, require_env


@click.command("hosts")
@env_option()
@JSON_OPTION
@click.pass_obj
def command(settings: Settings, env_name: str | None, as_json: bool) -> int:
    """Show the resolved hosts of an environment."""
    from opsplay.environment import load_environment

    env_name = require_env(env_name)
    env = load_environment(settings.inventories(), env_name)
    groups = {h: sorted(g - {"all"}) for h, g in sorted(env.host_groups.items())}
    if as_json:
        import json

        click.echo(json.dumps({"env": env.name, "hosts": groups}, indent=2))
        return 0
    for host, names in groups.items():
        click.echo(f"{host}  {', '.join(names) or '-'}")
    return 0
