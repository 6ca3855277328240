"""The prod guard: protected environments and destructive procedures need a confirmation."""

from __future__ import annotations

import sys

import click

from opsplay.environment import Environment, is_protected
from opsplay.errors import ExitCode, OpsplayError
from opsplay.playbooks import Playbook


def confirm_run(
    env: Environment,
    book: Playbook,
    what: str,
    *,
    check: bool,
    yes: bool,
    interactive: bool = True,
    hint: str = "--yes (or OPSPLAY_YES=1)",
    outside_window: bool = False,
) -> None:
    """Return when the run may go ahead; raise NOT_CONFIRMED otherwise. --check never asks;
    neither does a caller that is not ``interactive`` (library code) or has no terminal."""
    reasons = []
    if is_protected(env.name):
        reasons.append(f"'{env.name}' is a protected environment")
    if book.destructive:
        reasons.append(f"'{book.name}' is destructive")
    if outside_window:
        reasons.append("it runs outside the maintenance calendar's windows")
    if check or yes or not reasons:
        return
    why = " and ".join(reasons)
    action = what.removeprefix("run ")  # "run restore" is recorded; "run restore" is not said
    if not (interactive and sys.stdin.isatty()):
        raise OpsplayError(
            f"refusing to run {action} on {env.name} without {hint}: {why}",
            ExitCode.NOT_CONFIRMED,
        )
    question = f"{why}. Run {action} on {env.name} ({len(env.hosts)} hosts)?"
    if not click.confirm(question, default=False, err=True):
        raise OpsplayError(f"{action} on {env.name} was not confirmed", ExitCode.NOT_CONFIRMED)
