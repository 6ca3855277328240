"""The catalog of what opsplay can run: procedures and maintenance schedules.

Names are the CLI's contract: ``opsplay run NAME`` runs ``playbooks/NAME.yml`` and
``opsplay maintenance SCHEDULE`` runs ``playbooks/maintenance-SCHEDULE.yml``. Each procedure
names the role that does its work (``roles/ROLE``), whose Molecule scenario is
``molecule/ROLE``; one role may serve several procedures (pg_backup: backup, restore-test,
restore). A procedure is listed by ``opsplay run --list`` once its playbook exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsplay.errors import OpsplayError

if TYPE_CHECKING:
    from pathlib import Path


class Playbook:
    """A playbook the CLI can run. (A plain class: this module loads for ``--help``.)"""

    __slots__ = (
        "description",
        "destructive",
        "disruptive",
        "harmless_when",
        "name",
        "opens_window",
        "role",
        "schedule",
    )

    def __init__(
        self,
        name: str,
        role: str,
        description: str,
        destructive: bool = False,
        opens_window: bool = False,
        disruptive: bool = False,
        schedule: str | None = None,
        harmless_when: tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.role = role  # roles/ROLE does the work; molecule/ROLE proves it
        self.description = description
        self.destructive = destructive  # asks for confirmation in every environment
        # turns maintenance mode on (and off in `always:`); a cancelled run must close it
        self.opens_window = opens_window
        # opens a window or changes packages or services: with a maintenance calendar, it
        # starts only inside one of the environment's windows (opsplay.maintenance_calendar)
        self.disruptive = disruptive or opens_window
        self.schedule = schedule  # the maintenance schedule this playbook is (its own window)
        # (variable, value) that makes a disruptive playbook harmless: `maintenance-mode` with
        # state=off puts the site back, which no calendar may refuse (9 a.m., a freeze)
        self.harmless_when = harmless_when

    def disrupts(self, extravars: dict[str, object]) -> bool:
        """Whether a run with these extra vars is disruptive (the calendar applies to it)."""
        if self.harmless_when is not None:
            name, value = self.harmless_when
            if str(extravars.get(name, "")) == value:
                return False
        return self.disruptive

    @property
    def path(self) -> Path:
        from opsplay.content import playbooks_dir

        return playbooks_dir() / f"{self.name}.yml"

    @property
    def available(self) -> bool:
        return self.path.is_file()

    def __repr__(self) -> str:
        return f"Procedure({self.name!r}, role={self.role!r}, destructive={self.destructive})"


#: The library's name for a playbook ``opsplay.run`` accepts (name, role, description,
#: destructive, opens_window).
Procedure = Playbook


PROCEDURES: dict[str, Playbook] = {
    p.name: p
    for p in (
        Playbook(
            "health",
            "health",
            "disk, memory, PostgreSQL readiness and HTTP checks against thresholds",
        ),
        Playbook(
            "backup", "pg_backup", "PostgreSQL backups, verified, with checksums and manifests"
        ),
        Playbook(
            "restore-test",
            "pg_backup",
            "restore the newest backups into scratch databases and check them",
        ),
        Playbook(
            "restore",
            "pg_backup",
            "restore a backup over a database",
            destructive=True,
            disruptive=True,
        ),
        Playbook("vacuum", "pg_maintenance", "VACUUM (ANALYZE) the tables that need it"),
        Playbook(
            "reindex", "pg_maintenance", "rebuild bloated indexes concurrently", disruptive=True
        ),
        Playbook(
            "kill-long-queries",
            "pg_maintenance",
            "cancel, then terminate, runaway queries",
            destructive=True,
        ),
        Playbook(
            "rotate-logs",
            "log_rotation",
            "manage logrotate configuration; -e force=true rotates now",
        ),
        Playbook(
            "cleanup",
            "log_cleanup",
            "delete old files matching declared patterns",
            destructive=True,
        ),
        Playbook("cert-check", "cert_renewal", "report certificate expiry against thresholds"),
        Playbook(
            "renew-certs",
            "cert_renewal",
            "renew due certificates with certbot and verify them",
            disruptive=True,  # reloads the services using them
        ),
        Playbook(
            "maintenance-mode",
            "maintenance_mode",
            "maintenance page on or off (-e state=on|off; or opsplay maintenance-mode on|off)",
            disruptive=True,
            harmless_when=("state", "off"),
        ),
        Playbook(
            "security-updates",
            "security_updates",
            "apply security updates in batches",
            destructive=True,
            disruptive=True,
        ),
    )
}

SCHEDULES: tuple[str, ...] = ("daily", "weekly", "monthly", "quarterly")
# The schedules whose playbook is a maintenance window (maintenance_mode on ... off).
WINDOW_SCHEDULES = frozenset({"weekly", "monthly"})


def procedure(name: str) -> Playbook:
    known = PROCEDURES.get(name)
    if known is None:
        choices = ", ".join(p.name for p in PROCEDURES.values() if p.available)
        raise OpsplayError(f"unknown procedure '{name}' (available: {choices})")
    if not known.available:
        raise OpsplayError(f"procedure '{name}' is not implemented yet (no {known.path.name})")
    return known


def schedule(name: str) -> Playbook:
    if name not in SCHEDULES:
        raise OpsplayError(f"unknown schedule '{name}' (choose from: {', '.join(SCHEDULES)})")
    book = Playbook(
        f"maintenance-{name}",
        "",
        f"the {name} maintenance schedule",
        opens_window=name in WINDOW_SCHEDULES,
        schedule=name,
    )
    if not book.available:
        raise OpsplayError(f"schedule '{name}' has no playbook ({book.path})")
    return book


def available_procedures() -> list[Playbook]:
    return [p for p in PROCEDURES.values() if p.available]
