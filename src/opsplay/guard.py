"""The prod guard: protected environments and destructive procedures need a confirmation."""

from __future__ import annotations

import sys

import click

from opsplay.environments import Environment, is_protected
from opsplay.errors import ExitCode, OpsplayError
from opsplay.procedures import Playbook


def confirm_run(env: Environment, book: Playbook, what: str, *, check: bool, yes: bool) -> None:
    """Return when the run may go ahead; raise NOT_CONFIRMED otherwise. --check never asks."""
    reasons = []
    if is_protected(env.name):
        reasons.append(f"'{env.name}' is a protected environment")
    if book.destructive:
        reasons.append(f"'{book.name}' is destructive")
    if check or yes or not reasons:
        return
    why = " and ".join(reasons)
    action = what.removeprefix("run ")  # "run restore" is recorded; "run restore" is not said
    if not sys.stdin.isatty():
        raise OpsplayError(
            f"refusing to run {action} on {env.name} without --yes (or OPSPLAY_YES=1): {why}",
            ExitCode.NOT_CONFIRMED,
        )
    question = f"{why}. Run {action} on {env.name} ({len(env.hosts)} hosts)?"
    if not click.confirm(question, default=False, err=True):
        raise OpsplayError(f"{action} on {env.name} was not confirmed", ExitCode.NOT_CONFIRMED)
