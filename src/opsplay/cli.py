"""The opsplay command line: the root group, its global options, and the error edge.

Subcommands live one per file in ``opsplay.commands`` and are registered here, in one place.
Every error becomes one line on stderr and a documented exit code (``opsplay.errors.ExitCode``);
``--debug`` (or OPSPLAY_DEBUG=1) shows the traceback too.
"""

from __future__ import annotations

import os
import sys

import click

from opsplay import __version__
from opsplay.commands import (
    backups,
    envs,
    history,
    hosts,
    lab,
    maintenance,
    maintenance_mode,
    report,
    run,
    schedule,
    status,
)
from opsplay.errors import ExitCode, OpsplayError
from opsplay.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    5 environment locked, 6 not confirmed, 130 interrupted.
    """
    ctx.obj = Settings(inventory_dir=inventory_dir, state_dir=state_dir, history_keep=history_keep)


for module in (
    maintenance,
    maintenance_mode,
    run,
    report,
    backups,
    status,
    envs,
    hosts,
    history,
    schedule,
    lab,
):
    cli.add_command(module.command)


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
