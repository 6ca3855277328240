"""opsplay maintenance-mode on|off --env ENV: the maintenance page, by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from opsplay.options import run_options

if TYPE_CHECKING:
    from opsplay.settings import Settings


@click.command("maintenance-mode")
@click.argument("state", type=click.Choice(["on", "off"]))
@run_options
@click.pass_obj
def command(settings: Settings, state: str, **kwargs: Any) -> int:
    """Turn maintenance mode on or off (nginx serves 503, health endpoints keep answering)."""
    from opsplay.execute import execute_and_print
    from opsplay.inputs import RunOptions
    from opsplay.playbooks import procedure

    book = procedure("maintenance-mode")
    options = RunOptions.from_click(**kwargs)
    options.extravars["state"] = state
    return execute_and_print(settings, book, f"maintenance-mode {state}", options)
