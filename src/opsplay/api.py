"""opsplay as a Python library: the same runs as the CLI, from code.

    import opsplay

    result = opsplay.run("backup", env="prod", confirm=True)
    if not result.ok:
        for host, failure in result.failed_hosts.items():
            print(host, failure)

The CLI is one client of these functions' machinery (``opsplay.execute``): the same input
checks, prod guard, environment lock, history, secret handling, closing of a window a cancelled
run left open, and notifications. Library calls never print, never prompt (a prod or
destructive run needs ``confirm=True``, else ``NotConfirmed``), never exit the process, and
leave the caller's environment variables, umask and signal handlers as they found them; runs
against different environments may go on in different threads at once.

Errors are exceptions (``OpsplayError`` and its subclasses carry the CLI's exit code); a run
whose hosts failed is a result (``result.ok is False``), not an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplay.errors import ExitCode, Interrupted, OpsplayError
from opsplay.settings import Settings

if TYPE_CHECKING:
    from opsplay.environment import Environment
    from opsplay.playbooks import Playbook
    from opsplay.state import RunRecord

__all__ = [
    "Backup",
    "Event",
    "FleetStatus",
    "Host",
    "HostResult",
    "RunResult",
    "backups",
    "environments",
    "history",
    "hosts",
    "maintenance",
    "procedures",
    "run",
    "status",
]


@dataclass(frozen=True)
class Event:
    """One step of a run, as it happens: ``kind`` is ``play_started``, ``task_started``,
    ``task_result`` (``result``: ok, changed, failed, skipped or unreachable) or
    ``run_finished``; ``raw`` is ansible-runner's event."""

    kind: str
    host: str | None
    task: str
    result: str | None = None
    message: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class HostResult:
    """What a run did on one host (Ansible's counts), and why it failed when it did."""

    ok: int
    changed: int
    failed: int
    unreachable: int
    skipped: int
    duration: float
    message: str = ""
    failed_task: str = ""


@dataclass(frozen=True)
class RunResult:
    """A finished run. ``ok`` is true when it succeeded on every host; ``data`` holds the
    roles' reports (e.g. ``data["health"][HOST]``: each host's health report with its
    summary); ``to_json()`` is exactly the CLI's ``--json`` document."""

    id: str
    env: str
    what: str
    check: bool
    status: str
    exit_code: int
    started: float
    duration: float
    hosts: Mapping[str, HostResult]
    data: Mapping[str, Any]
    artifacts: Path
    strategy: str
    notices: tuple[str, ...] = ()
    _record: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK

    @property
    def failed_hosts(self) -> dict[str, str]:
        """Each failed or unreachable host with its failure message."""
        return {
            host: row.message or ("unreachable" if row.unreachable else "failed")
            for host, row in self.hosts.items()
            if row.failed or row.unreachable
        }

    def to_json(self) -> dict[str, Any]:
        return self._record.to_json()

    @classmethod
    def from_record(cls, record: RunRecord, notices: Iterable[str] = ()) -> RunResult:
        hosts = {
            host: HostResult(
                ok=int(row.get("ok", 0)),
                changed=int(row.get("changed", 0)),
                failed=int(row.get("failed", 0)),
                unreachable=int(row.get("unreachable", 0)),
                skipped=int(row.get("skipped", 0)),
                duration=float(row.get("duration", 0)),
                message=str(row.get("message", "")),
                failed_task=str(row.get("failed_task", "")),
            )
            for host, row in record.hosts.items()
        }
        return cls(
            id=record.id,
            env=record.env,
            what=record.what,
            check=record.check,
            status=record.status,
            exit_code=int(record.exit_code if record.exit_code is not None else ExitCode.ERROR),
            started=record.started,
            duration=float(record.duration or 0),
            hosts=hosts,
            data=record.data,
            artifacts=Path(record.artifacts),
            strategy=record.strategy,
            notices=tuple(notices),
            _record=record,
        )


@dataclass(frozen=True)
class FleetStatus:
    """``opsplay status``: per host what the procedures left (backup ages, restore tests,
    certificates, security updates, reboot, vacuum, maintenance mode) and the last run of each
    schedule; ``to_json()`` is the CLI's ``--json`` document."""

    env: str
    generated_at: str
    run_id: str
    hosts: Mapping[str, Mapping[str, Any]]
    schedules: Mapping[str, Mapping[str, Any]]
    _document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return dict(self._document)


@dataclass(frozen=True)
class Backup:
    """One database's backups on one host: ``status`` ok, stale (newest good backup older than
    max_age) or missing (no good backup), ``why`` when not ok, and the newest backup's and
    newest good backup's manifests (name, size, sha256, ended...)."""

    host: str
    database: str
    status: str
    why: str
    count: int
    good: int
    bad: int
    newest: Mapping[str, Any] | None
    newest_good: Mapping[str, Any] | None
    newest_good_age_seconds: int | None
    last_restore_test: Mapping[str, Any] | None


@dataclass(frozen=True)
class Host:
    """A host of an environment with its groups, as Ansible resolves the inventory."""

    name: str
    groups: tuple[str, ...]


def run(
    procedure: str,
    env: str,
    *,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
    tags: str | Iterable[str] | None = None,
    skip_tags: str | Iterable[str] | None = None,
    forks: int | None = None,
    confirm: bool = False,
    outside_window: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    notify_url: str | None = None,
    notify_on: str = "failure",
    notify_format: str = "json",
    settings: Settings | None = None,
) -> RunResult:
    """Run one procedure (``opsplay run PROCEDURE``, e.g. ``"backup"``) on an environment.

    ``confirm=True`` is needed for a protected environment (prod) or a destructive procedure
    (else ``NotConfirmed``); ``check=True`` is a dry run and never needs it. With a maintenance
    calendar, a disruptive procedure outside every window or inside a freeze raises
    ``OutsideWindow`` unless ``outside_window`` gives the reason (and ``confirm=True``).
    ``on_event`` receives an ``Event`` for each step while the run goes on (called from the
    thread running it). Raises ``BadInput``, ``Locked``, ``NotConfirmed``, ``OutsideWindow``
    before anything ran, ``Interrupted`` when the run was cancelled (Ctrl-C, SIGTERM). Returns
    the result otherwise, also when hosts failed (``result.ok`` is False)."""
    from opsplay.playbooks import procedure as find_procedure

    book = find_procedure(procedure)
    return _execute(book, f"run {procedure}", env, locals(), settings, on_event, confirm)


def maintenance(
    schedule: str,
    env: str,
    *,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
    tags: str | Iterable[str] | None = None,
    skip_tags: str | Iterable[str] | None = None,
    forks: int | None = None,
    confirm: bool = False,
    outside_window: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    notify_url: str | None = None,
    notify_on: str = "failure",
    notify_format: str = "json",
    settings: Settings | None = None,
) -> RunResult:
    """Run a maintenance schedule (``daily``, ``weekly``, ``monthly``, ``quarterly``) on an
    environment, as ``opsplay maintenance SCHEDULE``; same arguments and errors as ``run``.
    A window cancelled by an interrupt is closed (maintenance mode off) before ``Interrupted``
    is raised."""
    from opsplay.playbooks import schedule as find_schedule

    book = find_schedule(schedule)
    return _execute(book, f"maintenance {schedule}", env, locals(), settings, on_event, confirm)


def status(env: str, *, limit: str | None = None, settings: Settings | None = None) -> FleetStatus:
    """The fleet status of an environment (read-only: no lock, no confirmation), as
    ``opsplay status --json``. Writes no metrics file (the CLI does)."""
    from opsplay.commands.status import collect

    settings = settings or Settings.from_env()
    notices: list[str] = []
    _, _, document, _ = collect(
        settings,
        env,
        limit,
        settings.vault_password_file,
        0,
        as_json=True,
        channel=_channel(notices, None),
    )
    return FleetStatus(
        env=document["env"],
        generated_at=document["generated_at"],
        run_id=document["run"]["id"],
        hosts=document["hosts"],
        schedules=document["schedules"],
        _document=document,
    )


def backups(
    env: str,
    *,
    max_age: int | str | None = None,
    limit: str | None = None,
    verify: bool = False,
    settings: Settings | None = None,
) -> list[Backup]:
    """Every database's backups on every database host of an environment (read-only), judged
    against ``max_age`` (seconds, or text such as ``"26h"``; default 26 hours), as
    ``opsplay backups --json``. ``verify=True`` compares every archive with its checksum."""
    from opsplay.commands.backups import DEFAULT_MAX_AGE, collect, parse_max_age

    settings = settings or Settings.from_env()
    seconds = max_age if isinstance(max_age, int) else parse_max_age(max_age or DEFAULT_MAX_AGE)
    _, _, summary = collect(
        settings,
        env,
        limit,
        settings.vault_password_file,
        0,
        seconds,
        verify,
        as_json=True,
        channel=_channel([], None),
    )
    return [
        Backup(
            host=host,
            database=name,
            status=entry["status"],
            why=entry["why"],
            count=entry["count"],
            good=entry["good"],
            bad=entry["bad"],
            newest=entry["newest"],
            newest_good=entry["newest_good"],
            newest_good_age_seconds=entry["newest_good_age_seconds"],
            last_restore_test=entry["last_restore_test"],
        )
        for host, listing in summary["hosts"].items()
        for name, entry in listing["databases"].items()
    ]


def history(env: str | None = None, *, settings: Settings | None = None) -> list[RunRecord]:
    """Past runs (oldest first), of one environment or all."""
    from opsplay.state import History

    settings = settings or Settings.from_env()
    return History(settings.state(), keep=settings.history_keep).records(env)


def environments(*, settings: Settings | None = None) -> list[Environment]:
    """The environments of the inventory directory, each resolved by ansible-core."""
    from opsplay.environment import list_environments

    settings = settings or Settings.from_env()
    return list_environments(settings.inventories())


def hosts(env: str, *, settings: Settings | None = None) -> list[Host]:
    """The hosts of an environment with their groups (``all`` left out)."""
    from opsplay.environment import load_environment

    settings = settings or Settings.from_env()
    resolved = load_environment(settings.inventories(), env)
    return [
        Host(name=host, groups=tuple(sorted(groups - {"all"})))
        for host, groups in sorted(resolved.host_groups.items())
    ]


def procedures() -> list[Playbook]:
    """The procedures ``run`` accepts, each with its name, role, description and whether it is
    destructive."""
    from opsplay.playbooks import available_procedures

    return available_procedures()


def _execute(
    book: Playbook,
    what: str,
    env: str,
    arguments: Mapping[str, Any],
    settings: Settings | None,
    on_event: Callable[[Event], None] | None,
    confirm: bool,
) -> RunResult:
    from opsplay.execute import execute

    settings = settings or Settings.from_env()
    options = _options(env, arguments, settings, confirm)
    notices: list[str] = []
    try:
        record = execute(settings, book, what, options, _channel(notices, on_event))
    except KeyboardInterrupt:
        raise Interrupted(f"{what} on {env} was interrupted; " + "; ".join(notices)) from None
    result = RunResult.from_record(record, notices)
    if record.status == "canceled":
        raise Interrupted(f"{what} on {env} was cancelled (run {record.id})", result=result)
    return result


def _options(env: str, arguments: Mapping[str, Any], settings: Settings, confirm: bool) -> Any:
    from opsplay.inputs import RunOptions

    extra = arguments.get("extra_vars") or {}
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        raise OpsplayError("extra_vars must be a mapping of names to values")
    if arguments.get("notify_url") and not str(arguments["notify_url"]).startswith(
        ("http://", "https://")
    ):
        raise OpsplayError("notify_url must be an http:// or https:// URL")
    reason = arguments.get("outside_window")
    if reason is not None and not str(reason).strip():
        raise OpsplayError("outside_window needs a reason (it goes to the logs)")
    vault = settings.vault_password_file
    if vault and not Path(vault).is_file():
        raise OpsplayError(f"vault password file {vault} not found")
    return RunOptions(
        env=env,
        limit=arguments.get("limit"),
        check=bool(arguments.get("check")),
        diff=bool(arguments.get("diff")),
        tags=_tags(arguments.get("tags")),
        skip_tags=_tags(arguments.get("skip_tags")),
        forks=arguments.get("forks"),
        yes=confirm,
        as_json=True,
        vault_password_file=vault,
        notify_url=arguments.get("notify_url"),
        notify_on=arguments.get("notify_on") or "failure",
        notify_format=arguments.get("notify_format") or "json",
        outside_window=arguments.get("outside_window"),
        strategy=settings.strategy,
        extravars=dict(extra),
    )


def _tags(value: str | Iterable[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def _channel(notices: list[str], on_event: Callable[[Event], None] | None) -> Any:
    from opsplay.execute import Channel

    return Channel(
        notice=notices.append,
        on_event=None if on_event is None else lambda raw: _deliver(raw, on_event),
    )


_KINDS = {
    "playbook_on_play_start": "play_started",
    "runner_on_start": "task_started",
    "playbook_on_stats": "run_finished",
}
_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}


def _deliver(raw: Mapping[str, Any], on_event: Callable[[Event], None]) -> None:
    kind = str(raw.get("event", ""))
    data = raw.get("event_data") or {}
    result = _RESULTS.get(kind)
    if result is None and kind not in _KINDS:
        return
    res = data.get("res") or {}
    if result == "ok" and res.get("changed"):
        result = "changed"
    message = str(res.get("msg", "")) if result in ("failed", "unreachable") else ""
    on_event(
        Event(
            kind="task_result" if result else _KINDS[kind],
            host=data.get("host"),
            task=str(data.get("task") or data.get("play") or ""),
            result=result,
            message=message,
            raw=raw,
        )
    )
