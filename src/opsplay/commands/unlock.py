"""opsplay unlock --env ENV [--limit PATTERN]: break the host leases of runs that are gone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opsplay.options import LIMIT_OPTION, VAULT_OPTION, env_option, require_env

if TYPE_CHECKING:
    from opsplay.settings import Settings


@click.command("unlock")
@env_option()
@LIMIT_OPTION
@click.option(
    "--yes", "-y", "yes", is_flag=True, envvar="OPSPLAY_YES", help="Do not ask (prod guard)."
)
@VAULT_OPTION
@click.pass_obj
def command(
    settings: Settings,
    env_name: str | None,
    limit: str | None,
    yes: bool,
    vault_password_file: str | None,
) -> int:
    """Break the host leases (issue 18) on the hosts, whoever holds them; one line per host."""
    from opsplay.environment import load_environment
    from opsplay.execute import check_selection, cli_channel
    from opsplay.guard import confirm_run
    from opsplay.inputs import RunOptions
    from opsplay.leases import unlock
    from opsplay.lock import environment_lock
    from opsplay.playbooks import Playbook
    from opsplay.state import private_dir

    env = load_environment(settings.inventories(), require_env(env_name))
    options = RunOptions(
        env=env.name, limit=limit, yes=yes, vault_password_file=vault_password_file
    )
    check_selection(env, options)
    book = Playbook("unlock", "", "break the host leases")
    channel = cli_channel()
    confirm_run(env, book, "unlock", check=False, yes=yes, hint=channel.confirm_hint)
    state_dir = private_dir(settings.state())
    # a run of this node holding the environment is alive: its leases are not broken under it
    with environment_lock(state_dir, env.name, f"opsplay unlock --env {env.name}"):
        code, lines = unlock(settings, env, options, channel)
    for line in lines:
        click.echo(line)
    return code
