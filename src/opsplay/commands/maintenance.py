"""opsplay maintenance SCHEDULE --env ENV: run a maintenance schedule's playbook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from opsplay.settings import Settings

from opsplay.options import run_options
from opsplay.playbooks import SCHEDULES, schedule


@click.command("maintenance")
@click.argument("schedule_name", metavar=f"{{{','.join(SCHEDULES)}}}")
@run_options
@click.pass_obj
def command(settings: Settings, schedule_name: str, **kwargs: Any) -> int:
    """Run the daily, weekly, monthly or quarterly maintenance schedule."""
    from opsplay.execute import execute_and_print
    from opsplay.inputs import RunOptions

    book = schedule(schedule_name)
    options = RunOptions.from_click(**kwargs)
    return execute_and_print(settings, book, f"maintenance {schedule_name}", options)
