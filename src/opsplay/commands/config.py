"""opsplay config: the Ansible configuration a run would use, each setting with its source."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from opsplay.options import JSON_OPTION

if TYPE_CHECKING:
    from opsplay.settings import Settings


@click.command("config")
@click.option(
    "--strategy",
    type=click.Choice(["auto", "mitogen", "linear"]),
    default="auto",
    show_default=True,
    envvar="OPSPLAY_STRATEGY",
    help="The strategy a run would choose (as opsplay run --strategy).",
)
@JSON_OPTION
@click.pass_obj
def command(settings: Settings, strategy: str, as_json: bool) -> int:
    """Show the Ansible configuration runs use: each setting, its value and where it comes from."""
    from opsplay.display import plain_table
    from opsplay.execute import run_configuration
    from opsplay.state import private_dir
    from opsplay.strategy import choose

    config = run_configuration(settings, private_dir(settings.state()), choose(strategy))
    if as_json:
        document = {
            "config_file": str(config.config_file),
            "team_file": str(config.team_file) if config.team_file else None,
            "settings": [
                {"name": s.name, "value": s.value, "source": s.source} for s in config.settings
            ],
        }
        click.echo(json.dumps(document, indent=2))
        return 0
    team = config.team_file or "none (./ansible.cfg, INVENTORY_DIR/ansible.cfg, ANSIBLE_CONFIG)"
    click.echo(f"ANSIBLE_CONFIG: {config.config_file}\nteam ansible.cfg: {team}\n")
    rows = [(s.name, s.value, s.source) for s in config.settings]
    click.echo(plain_table(("setting", "value", "source"), rows), nl=False)
    return 0
