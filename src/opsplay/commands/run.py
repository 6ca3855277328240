"""opsplay run PROCEDURE --env ENV: run one procedure's playbook; --list shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from opsplay.settings import Settings

from opsplay.errors import OpsplayError
from opsplay.options import run_options
from opsplay.playbooks import available_procedures, procedure


class _RunCommand(click.Command):
    """`opsplay run --help` ends with the procedures, one line each."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (book.name, book.description + ("  [destructive]" if book.destructive else ""))
            for book in available_procedures()
        ]
        with formatter.section("Procedures"):
            formatter.write_dl(rows)
        super().format_epilog(ctx, formatter)


@click.command("run", cls=_RunCommand)
@click.argument("name", metavar="PROCEDURE", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the procedures, one per line.")
@run_options
@click.pass_obj
def command(settings: Settings, name: str | None, list_only: bool, **kwargs: Any) -> int:
    """Run one procedure (e.g. health, backup, vacuum). Options go as -e key=value."""
    if list_only:
        books = available_procedures()
        width = max((len(b.name) for b in books), default=0)
        roles = max((len(b.role) for b in books), default=0) + len("roles/")
        for book in books:
            flag = "  [destructive]" if book.destructive else ""
            role = f"roles/{book.role}"
            click.echo(f"{book.name:<{width}}  {role:<{roles}}  {book.description}{flag}")
        return 0
    if not name:
        raise OpsplayError("missing PROCEDURE (see 'opsplay run --list')")
    from opsplay.execute import execute_and_print
    from opsplay.inputs import RunOptions

    book = procedure(name)
    options = RunOptions.from_click(**kwargs)
    return execute_and_print(settings, book, f"run {name}", options)
