"""opsplay report --env ENV: the newest PostgreSQL maintenance report of an environment.

The pg_maintenance role (``opsplay run vacuum`` / ``reindex``) saves each run's report as
``REPORTS/ENV/YYYYmmddTHHMMSSZ-ACTION[-check].{json,md}`` on the control node, where REPORTS is
``$OPSPLAY_REPORT_DIR``, else ``STATE/reports``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pathlib import Path

    from opsplay.settings import Settings

from opsplay.errors import OpsplayError
from opsplay.options import JSON_OPTION, env_option, require_env


def reports_root(settings: Settings) -> Path:
    from pathlib import Path

    explicit = os.environ.get("OPSPLAY_REPORT_DIR")
    return Path(explicit).expanduser() if explicit else settings.state() / "reports"


@click.command("report")
@env_option()
@JSON_OPTION
@click.pass_obj
def command(settings: Settings, env_name: str | None, as_json: bool) -> int:
    """Print the newest PostgreSQL maintenance report (vacuum, reindex) of an environment."""
    env_name = require_env(env_name)
    directory = reports_root(settings) / env_name
    suffix = ".json" if as_json else ".md"
    found = sorted(directory.glob(f"*{suffix}")) if directory.is_dir() else []
    if not found:
        raise OpsplayError(
            f"no report for environment '{env_name}' in {directory} "
            "(run: opsplay run vacuum --env ENV)"
        )
    click.echo(found[-1].read_text(encoding="utf-8"), nl=False)
    return 0
