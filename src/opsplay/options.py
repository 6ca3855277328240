"""Options shared by every command that runs a playbook, kept as data and applied by one decorator.

Each option also reads an ``OPSPLAY_*`` environment variable, so cron and AWX need no flags.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from opsplay.errors import OpsplayError

F = TypeVar("F", bound=Callable[..., Any])


ENV_HELP = "Environment: the inventory directory INVENTORY_DIR/ENV (opsplay envs lists them)."


def env_option(dest: str = "env_name", required: bool = False) -> Callable[[F], F]:
    """``--env ENV`` (or OPSPLAY_ENV), described the same way by every command; commands that
    need it call ``require_env`` (or pass ``required``)."""
    return click.option(
        "--env", dest, envvar="OPSPLAY_ENV", metavar="ENV", required=required, help=ENV_HELP
    )


def require_env(name: str | None) -> str:
    if not name:
        raise OpsplayError("missing --env ENV (or OPSPLAY_ENV)")
    return name


JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, envvar="OPSPLAY_JSON", help="Print JSON."
)

LIMIT_OPTION = click.option(
    "--limit", envvar="OPSPLAY_LIMIT", help="Further limit hosts (Ansible pattern)."
)

VERBOSE_OPTION = click.option(
    "-v",
    "--verbose",
    "verbosity",
    count=True,
    envvar="OPSPLAY_VERBOSE",
    help="Show Ansible's own output; repeat for more (-vvv).",
)

VAULT_OPTION = click.option(
    "--vault-password-file",
    type=click.Path(dir_okay=False),
    envvar="OPSPLAY_VAULT_PASSWORD_FILE",
    help="Ansible Vault password file.",
)

RUN_OPTIONS = (
    env_option("env"),
    LIMIT_OPTION,
    click.option(
        "--check",
        is_flag=True,
        envvar="OPSPLAY_CHECK",
        help="Dry run: report what would change, change nothing.",
    ),
    click.option("--diff", is_flag=True, envvar="OPSPLAY_DIFF", help="Show file diffs."),
    click.option("--tags", envvar="OPSPLAY_TAGS", help="Only run tasks with these tags."),
    click.option("--skip-tags", envvar="OPSPLAY_SKIP_TAGS", help="Skip tasks with these tags."),
    click.option(
        "-e",
        "--extra-vars",
        "extra_vars",
        multiple=True,
        envvar="OPSPLAY_EXTRA_VARS",
        metavar="KEY=VALUE|@FILE",
        help="Procedure options (repeatable).",
    ),
    click.option(
        "--forks",
        type=click.IntRange(min=1),
        envvar="OPSPLAY_FORKS",
        help="Hosts handled in parallel (default: ansible.cfg).",
    ),
    VERBOSE_OPTION,
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        envvar="OPSPLAY_JSON",
        help="Print one JSON summary instead of progress and recap.",
    ),
    click.option(
        "--yes",
        "-y",
        "yes",
        is_flag=True,
        envvar="OPSPLAY_YES",
        help="Do not ask for confirmation (prod and destructive runs).",
    ),
    click.option(
        "--outside-window",
        envvar="OPSPLAY_OUTSIDE_WINDOW",
        metavar="REASON",
        help="Run a disruptive procedure or schedule outside the maintenance calendar's windows "
        "or inside a freeze (an emergency; the prod guard applies; REASON is recorded).",
    ),
    click.option(
        "--notify-url",
        envvar="OPSPLAY_NOTIFY_URL",
        metavar="URL",
        help="Webhook that receives the run summary (keep tokens in the environment).",
    ),
    click.option(
        "--notify-on",
        type=click.Choice(["failure", "always"]),
        default="failure",
        show_default=True,
        envvar="OPSPLAY_NOTIFY_ON",
        help="When to post to the webhook.",
    ),
    click.option(
        "--notify-format",
        type=click.Choice(["json", "slack"]),
        default="json",
        show_default=True,
        envvar="OPSPLAY_NOTIFY_FORMAT",
        help="Plain JSON summary, or a Slack-compatible payload.",
    ),
    click.option(
        "--strategy",
        type=click.Choice(["auto", "mitogen", "linear"]),
        default="auto",
        show_default=True,
        envvar="OPSPLAY_STRATEGY",
        help="auto: Mitogen when it supports the installed ansible-core, else stock linear.",
    ),
    VAULT_OPTION,
)


# The read-only queries (backups, status): no --check/--yes/-e, they change nothing.
QUERY_OPTIONS = (env_option(), LIMIT_OPTION, JSON_OPTION, VAULT_OPTION, VERBOSE_OPTION)


def query_options(func: F) -> F:
    for option in reversed(QUERY_OPTIONS):
        func = option(func)
    return func


def run_options(func: F) -> F:
    for option in reversed(RUN_OPTIONS):
        func = option(func)
    return func
