"""The one exception type the CLI turns into a single line and an exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """opsplay's documented exit codes (README, "Exit codes")."""

    OK = 0
    ERROR = 1  # ansible or opsplay failed in a way not listed below
    USAGE = 2  # bad input: unknown env/procedure, bad inventory, malformed -e, ...
    HOSTS_FAILED = 3  # the run finished, one or more hosts failed
    HOSTS_UNREACHABLE = 4  # the run finished, one or more hosts were unreachable
    LOCKED = 5  # another run holds this environment's lock
    NOT_CONFIRMED = 6  # prod or destructive run without confirmation / --yes
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; the run was cancelled


class OpsplayError(Exception):
    """An error with a one-line message and the exit code it maps to."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
