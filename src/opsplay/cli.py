"""The opsplay command line: the root group, its global options, and the error edge.

Subcommands live one per file in ``opsplay.commands`` and are registered here, in one place.
Every error becomes one line on stderr and a documented exit code (``opsplay.errors.ExitCode``);
``--debug`` (or OPSPLAY_DEBUG=1) shows the traceback too.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from opsplay import __version__
from opsplay.errors import ExitCode, OpsplayError
from opsplay.settings import Settings

#: Every command: its name -> (module in opsplay.commands, the summary `opsplay --help` shows).
#: A command's module is imported only when that command runs, so `opsplay --help` and every
#: other command skip the rest (tests/unit/test_startup.py keeps the summaries equal to the
#: commands' own docstrings).
COMMANDS: dict[str, tuple[str, str]] = {
    "backups": (
        "backups",
        "List the PostgreSQL backups per host and database (read-only; no lock, no confirmation).",
    ),
    "config": (
        "config",
        "Show the Ansible configuration runs use: each setting, its value and where it comes from.",
    ),
    "envs": ("envs", "List environments: hosts, groups (with host counts), protection."),
    "history": (
        "history",
        "List past runs: id, env, what ran, start, duration, status, changed/failed.",
    ),
    "hosts": ("hosts", "Show the resolved hosts of an environment."),
    "lab": (
        "lab",
        "Local lab hosts (Debian 12 + systemd + PostgreSQL, nginx, certbot, pebble, cron).",
    ),
    "maintenance": (
        "maintenance",
        "Run the daily, weekly, monthly or quarterly maintenance schedule.",
    ),
    "maintenance-mode": (
        "maintenance_mode",
        "Turn maintenance mode on or off (nginx serves 503, health endpoints keep answering).",
    ),
    "report": (
        "report",
        "Print the newest PostgreSQL maintenance report (vacuum, reindex) of an environment.",
    ),
    "run": ("run", "Run one procedure (e.g. health, backup, vacuum). Options go as -e key=value."),
    "schedule": (
        "schedule",
        "Run the maintenance schedules from cron or systemd timers (times: ENV/schedule.yml).",
    ),
    "status": (
        "status",
        "Fleet status: backups, restore tests, certificates, security updates, reboot, vacuum, "
        "and the last run of each schedule (read-only; also written for Prometheus).",
    ),
    "unlock": (
        "unlock",
        "Break the host leases (issue 18) on the hosts, whoever holds them; one line per host.",
    ),
}


def show_envvars(command: click.Command) -> None:
    """Every option's --help line names its OPSPLAY_* variable ([env var: ...]), in every
    command and subcommand: cron, systemd and AWX set them instead of flags."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            show_envvars(sub)


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command: click.Command = importlib.import_module(
            f"opsplay.commands.{COMMANDS[cmd_name][0]}"
        ).command
        show_envvars(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, from the summaries above instead of importing every command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [
            (name, click.utils.make_default_short_help(COMMANDS[name][1], limit)) for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--inventory-dir",
    envvar="OPSPLAY_INVENTORY_DIR",
    metavar="DIR",
    help="Directory with one inventory per environment (default: ./inventories).",
)
@click.option(
    "--state-dir",
    envvar="OPSPLAY_STATE_DIR",
    metavar="DIR",
    help="Run history and locks (default: ~/.local/state/opsplay).",
)
@click.option(
    "--history-keep",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    envvar="OPSPLAY_HISTORY_KEEP",
    help="Runs kept in the history.",
)
# read by main() before parsing (an error may come from parsing itself); declared for --help
@click.option("--debug", is_flag=True, envvar="OPSPLAY_DEBUG", help="Show tracebacks.")
@click.version_option(__version__, prog_name="opsplay")
@click.pass_context
def cli(
    ctx: click.Context,
    inventory_dir: str | None,
    state_dir: str | None,
    history_keep: int,
    debug: bool,
) -> None:
    """Operations runbooks as tested, idempotent Ansible.

    \b
    Exit codes: 0 ok, 1 error, 2 bad input, 3 hosts failed, 4 hosts unreachable,
    5 environment locked, 6 not confirmed, 7 outside the maintenance window, 130 interrupted.
    """
    ctx.obj = Settings(inventory_dir=inventory_dir, state_dir=state_dir, history_keep=history_keep)


show_envvars(cli)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("OPSPLAY_DEBUG", "") not in ("", "0")
    try:
        result = cli.main(args=args, prog_name="opsplay", standalone_mode=False)
        code = result if isinstance(result, int) else ExitCode.OK
    except OpsplayError as exc:
        _fail(exc.message, debug)
        code = exc.code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        _fail("aborted", debug)
        code = ExitCode.INTERRUPTED
    except click.ClickException as exc:
        _fail(exc.format_message(), debug)
        code = ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted", debug)
        code = ExitCode.INTERRUPTED
    except Exception as exc:  # the edge: one line, never a traceback without --debug
        _fail(f"internal error: {type(exc).__name__}: {exc}", debug)
        code = ExitCode.ERROR
    sys.exit(int(code))


def _fail(message: str, debug: bool) -> None:
    if debug and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    click.echo(f"opsplay: {message}", err=True)
