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
    OUTSIDE_WINDOW = 7  # a disruptive run outside the calendar's windows or inside a freeze
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; the run was cancelled


class OpsplayError(Exception):
    """Base of every error opsplay raises: a one-line message and the exit code the CLI maps
    it to (``code``). ``OpsplayError(message, code)`` gives the subclass of that code
    (``BadInput``, ``Locked``, ``NotConfirmed``, ``Interrupted``), so callers can catch those
    whatever raised them; other codes stay ``OpsplayError``."""

    code: ExitCode = ExitCode.USAGE

    def __new__(cls, message: str = "", code: ExitCode | None = None, **_: object) -> OpsplayError:
        if cls is OpsplayError and code is not None:
            cls = _BY_CODE.get(ExitCode(code), OpsplayError)
        elif cls is OpsplayError:
            cls = BadInput
        return super().__new__(cls)

    def __init__(self, message: str, code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = ExitCode(code) if code is not None else type(self).code

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.code))


class BadInput(OpsplayError):
    """Bad input (exit 2): an unknown environment or procedure, a malformed inventory or
    variable, a --limit matching no host, a value a role's argument check refuses..."""

    code = ExitCode.USAGE


class Locked(OpsplayError):
    """Another run holds the environment (exit 5); ``holder`` describes it."""

    code = ExitCode.LOCKED

    def __init__(self, message: str, code: ExitCode | None = None, holder: str = "") -> None:
        super().__init__(message, code)
        self.holder = holder


class NotConfirmed(OpsplayError):
    """A prod or destructive run without confirmation (exit 6); library code never prompts:
    pass ``confirm=True``."""

    code = ExitCode.NOT_CONFIRMED


class OutsideWindow(OpsplayError):
    """A disruptive run refused by the environment's maintenance calendar (exit 7): outside
    its window or inside a change freeze; nothing ran. ``outside_window=REASON`` overrides."""

    code = ExitCode.OUTSIDE_WINDOW


class Interrupted(OpsplayError):
    """The run was interrupted (Ctrl-C, SIGTERM) and cancelled (exit 130); ``result`` is what
    it did until then, when it had started."""

    code = ExitCode.INTERRUPTED

    def __init__(self, message: str, code: ExitCode | None = None, result: object = None) -> None:
        super().__init__(message, code)
        self.result = result


_BY_CODE: dict[ExitCode, type[OpsplayError]] = {
    ExitCode.USAGE: BadInput,
    ExitCode.LOCKED: Locked,
    ExitCode.NOT_CONFIRMED: NotConfirmed,
    ExitCode.OUTSIDE_WINDOW: OutsideWindow,
    ExitCode.INTERRUPTED: Interrupted,
}
