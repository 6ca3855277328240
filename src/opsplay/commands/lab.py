"""opsplay lab up|down|status|build|ee: local lab hosts as podman containers with systemd."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from opsplay.settings import Settings


@click.group("lab")
def command() -> None:
    """Local lab hosts (Debian 12 + systemd + PostgreSQL, nginx, certbot, pebble, cron)."""


@command.command("build")
@click.option(
    "--force", is_flag=True, envvar="OPSPLAY_LAB_FORCE", help="Rebuild even when the images exist."
)
def build(force: bool) -> int:
    """Build the lab images (only when missing or their recipe changed)."""
    from opsplay.lab.images import ensure_images

    click.echo(ensure_images(progress=_say, force=force))
    return 0


@command.command("ee")
@click.option(
    "--force",
    is_flag=True,
    envvar="OPSPLAY_LAB_FORCE",
    help="Rebuild it from scratch even when it exists (the base image is kept).",
)
def ee(force: bool) -> int:
    """Build the execution environment image for AWX (only when missing or its recipe changed)."""
    from opsplay.lab.ee import ensure_ee

    click.echo(ensure_ee(progress=_say, force=force))
    return 0


@command.command("up")
@click.option(
    "--hosts",
    "count",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    envvar="OPSPLAY_LAB_HOSTS",
    help="Number of lab hosts.",
)
@click.option(
    "--ssh",
    is_flag=True,
    envvar="OPSPLAY_LAB_SSH",
    help="Connect over SSH (sshd published on 127.0.0.1).",
)
@click.pass_obj
def up(settings: Settings, count: int, ssh: bool) -> int:
    """Start N lab hosts, wait for their services, write the lab inventory."""
    from opsplay.lab.hosts import up as lab_up

    key_dir = settings.state() / "lab" if ssh else None
    names = lab_up(count, settings.inventories(), progress=_say, ssh_key_dir=key_dir)
    click.echo(f"lab up: {', '.join(names)} (opsplay ... --env lab)")
    return 0


@command.command("down")
@click.pass_obj
def down(settings: Settings) -> int:
    """Remove the lab hosts and their inventory."""
    from opsplay.lab.hosts import down as lab_down

    names = lab_down(settings.inventories())
    click.echo(f"lab down: removed {len(names)} host(s)")
    return 0


@command.command("status")
def status() -> int:
    """Show the lab hosts."""
    from opsplay.lab.hosts import status as lab_status

    for row in lab_status():
        click.echo("  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def _say(message: str) -> None:
    click.echo(message, err=True)
