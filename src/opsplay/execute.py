"""Running one playbook against one environment, start to finish, for the CLI and the library.

validate input -> calendar -> prod guard -> environment lock -> ansible-runner (the playbook's
run gates: calendar again, host leases) -> history; a failed or cancelled run releases its leases
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplay import content, runner
from opsplay.arguments import bad_input, given_vars
from opsplay.display import Progress, print_json, print_recap
from opsplay.environment import Environment, load_environment
from opsplay.errors import ExitCode, Locked, OpsplayError
from opsplay.guard import confirm_run
from opsplay.inputs import RunOptions
from opsplay.lock import environment_lock
from opsplay.playbooks import Playbook
from opsplay.settings import Settings
from opsplay.state import History, RunRecord, private_dir
from opsplay.strategy import Strategy, choose
from opsplay.tags import check_tags

if TYPE_CHECKING:
    from opsplay.ansible_config import AnsibleConfig


@dataclass
class Channel:
    """How a run talks to whoever started it. The CLI prints notices on stderr, shows live
    progress and may ask for confirmation on a terminal; the library (``opsplay.api``) collects
    notices, passes events to its caller and never prompts or prints."""

    notice: Callable[[str], None] = field(default=lambda message: None)
    on_event: Callable[[dict[str, Any]], None] | None = None
    interactive: bool = False  # may ask for confirmation on a terminal
    display: bool = False  # live table or per-task lines on stderr
    confirm_hint: str = "confirm=True"  # how this caller confirms a prod or destructive run


def cli_channel() -> Channel:
    return Channel(
        notice=lambda message: print(f"opsplay: {message}", file=sys.stderr),
        interactive=True,
        display=True,
        confirm_hint="--yes (or OPSPLAY_YES=1)",
    )


def execute(
    settings: Settings, book: Playbook, what: str, options: RunOptions, channel: Channel
) -> RunRecord:
    """A procedure or schedule: guard, lock, the recorded run, closing a window a cancelled
    run left open, notification. Returns the run's record (its hosts may have failed: see
    ``exit_code``); raises OpsplayError (BadInput, Locked, NotConfirmed) before anything ran,
    and lets KeyboardInterrupt through after closing the window."""
    assert options.env is not None
    env = load_environment(settings.inventories(), options.env, cache_dir=cache_dir(settings))
    check_selection(env, options)
    outside = check_calendar(settings, env, book, what, options, channel)
    confirm_run(
        env,
        book,
        what,
        check=options.check,
        yes=options.yes,
        interactive=channel.interactive,
        hint=channel.confirm_hint,
        outside_window=outside,
    )
    pass_calendar(env, options)
    state_dir = private_dir(settings.state())
    started: list[RunRecord] = []
    with environment_lock(state_dir, env.name, f"opsplay {what} --env {env.name}"):
        try:
            record, _ = run_recorded(
                settings, env, book.path, what, options, channel, locked=True, on_start=started
            )
        except KeyboardInterrupt:
            lease_of = started[0].id if started else None
            if book.opens_window:
                close_window(settings, env, what, options, channel, lease_of)
            release_leases(settings, env, book, options, channel, started[0] if started else None)
            raise
        except Locked:
            raise  # refused on every host: this run holds no lease
        except OpsplayError:
            run = started[0] if started else None
            # ansible-playbook killed under a live opsplay: its `always:` never closed the window
            if run is not None and run.status == "killed" and book.opens_window:
                close_window(settings, env, what, options, channel, run.id)
            release_leases(settings, env, book, options, channel, run)
            raise
        if record.status == "canceled" and book.opens_window:
            close_window(settings, env, what, options, channel, record.id)
        if record.exit_code != ExitCode.OK:
            release_leases(settings, env, book, options, channel, record)
    if options.notify_url:
        from opsplay.notify import send, should_notify

        if should_notify(record, options.notify_on):
            send(options.notify_url, record, options.notify_format, notice=channel.notice)
    if book.opens_window and not options.check:
        warn_windows_left(record, env.name, channel)
    return record


def execute_and_print(settings: Settings, book: Playbook, what: str, options: RunOptions) -> int:
    """The CLI's run commands: execute on the CLI's channel, then the recap (or JSON)."""
    record = execute(settings, book, what, options, cli_channel())
    if options.as_json:
        print_json(record)
    else:
        print_recap(record)
    return int(record.exit_code or 0)


def cache_dir(settings: Settings) -> Path:
    """Where runs keep what they may reuse (the resolved inventories): ``STATE/cache``."""
    return settings.state() / "cache"


def check_selection(env: Environment, options: RunOptions) -> None:
    """Bad input before anything starts: a --limit matching no host, a tag no task has."""
    env.check_limit(options.limit)
    check_tags("--tags", options.tags, content.content_root())
    check_tags("--skip-tags", options.skip_tags, content.content_root())


def check_calendar(
    settings: Settings,
    env: Environment,
    book: Playbook,
    what: str,
    options: RunOptions,
    channel: Channel,
    now: float | None = None,
) -> bool:
    """The environment's maintenance calendar (``ENV/calendar.yml``), before any host is
    touched: a schedule runs only inside its own window, a disruptive procedure inside any
    window, neither inside a freeze; ``--check`` is never refused. Refused: a schedule's run
    is recorded as missed (``opsplay status`` shows it), and OutsideWindow (exit 7) is raised,
    unless ``--outside-window REASON`` overrides (returns True: the prod guard then asks)."""
    import datetime as dt

    from opsplay import maintenance_calendar

    calendar = maintenance_calendar.load(env.path)
    if calendar is None or options.check or not (book.disrupts(options.extravars) or book.schedule):
        return False
    moment = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    decision = calendar.decide(moment, book.schedule)
    if decision.allowed:
        return False
    if options.outside_window:
        channel.notice(f"{what} on {env.name} outside its window: {options.outside_window}")
        return True
    if book.schedule:
        history = History(private_dir(settings.state()), keep=settings.history_keep)
        run_id, _ = history.new_run_dir(env.name)
        missed = RunRecord(
            id=run_id,
            env=env.name,
            what=what,
            check=False,
            started=moment.timestamp(),
            status="missed",
            exit_code=int(ExitCode.OUTSIDE_WINDOW),
            duration=0.0,
            outside_window=decision.reason,
        )
        history.save(missed)
        history.rotate()
    raise OpsplayError(
        maintenance_calendar.refusal(what, env.name, decision.reason, "--outside-window REASON"),
        ExitCode.OUTSIDE_WINDOW,
    )


def pass_calendar(env: Environment, options: RunOptions) -> None:
    """The environment's calendar goes to the playbooks as ``opsplay_calendar`` (its zone
    resolved): their run gate (playbooks/tasks/gates.yml) decides with the same code, so a run
    the CLI let through is let through there, and ``opsplay_window_end`` is set from it."""
    from opsplay import maintenance_calendar

    calendar = maintenance_calendar.load(env.path)
    if calendar is not None:
        options.extravars["opsplay_calendar"] = maintenance_calendar.to_data(calendar)


def release_leases(
    settings: Settings,
    env: Environment,
    book: Playbook,
    options: RunOptions,
    channel: Channel,
    run: RunRecord | None,
) -> None:
    """After a run that failed or was cancelled: release the leases it still holds (its failed
    hosts never reached the playbook's release play). Nothing for --check or read-only runs,
    nor when its events show it holds none (e.g. stopped by the argument check)."""
    from opsplay import leases

    if run is None or options.check or not leases.takes_lease(book):
        return
    artifacts = Path(run.artifacts) if run.artifacts else None
    try:
        leases.release_run(settings, env, run.id, options, channel, artifacts)
    except OpsplayError as exc:
        channel.notice(f"releasing the leases of run {run.id} failed: {exc.message}")


def warn_windows_left(record: RunRecord, env: str, channel: Channel) -> None:
    """A host unreachable during a window run may have kept its window open: say how it closes."""
    for host, row in record.hosts.items():
        if row.get("unreachable"):
            channel.notice(
                f"{host} was unreachable during {record.what} (run {record.id}): if its "
                "window was open it is still in maintenance mode; the next window run closes it, "
                f"or: opsplay maintenance-mode off --env {env} --limit {host}"
            )


def close_window(
    settings: Settings,
    env: Environment,
    what: str,
    options: RunOptions,
    channel: Channel,
    lease_of: str | None = None,
) -> None:
    """Turn maintenance mode off after a cancelled window run (its `always:` never ran).

    Runs playbooks/maintenance-mode.yml with state=off and outcome=cancelled on the same hosts,
    still under the environment lock; a host whose flag is already absent is left alone. If this
    fails or is interrupted too, say so and how to finish by hand. ``lease_of``: the cancelled
    run, whose leases this run takes over (re-taking a lease of the same run is allowed).
    """
    if options.check:
        return  # a dry run turned nothing on
    from opsplay.playbooks import procedure

    channel.notice(
        f"{what} stopped inside a maintenance window: turning maintenance mode off on {env.name}"
    )
    by_hand = f"opsplay maintenance-mode off --env {env.name}"
    extravars = {"state": "off", "reason": f"{what} (cancelled)", "outcome": "cancelled"}
    if lease_of:
        extravars["opsplay_lease_run_id"] = lease_of
    cleanup, quiet = follow_up_options(env, options, channel, extravars)
    try:
        record, _ = run_recorded(
            settings,
            env,
            procedure("maintenance-mode").path,
            f"{what}: close window",
            cleanup,
            quiet,
            locked=True,
        )
    except KeyboardInterrupt:
        channel.notice(f"maintenance mode may still be on: run {by_hand}")
        raise
    if record.exit_code != ExitCode.OK:
        channel.notice(
            f"turning maintenance mode off failed ({record.status}; opsplay history "
            f"show {record.id}): run {by_hand}"
        )
    else:
        channel.notice(f"maintenance mode is off on {env.name}")


def follow_up_options(
    env: Environment, options: RunOptions, channel: Channel, extravars: dict[str, Any]
) -> tuple[RunOptions, Channel]:
    """The options and channel of a run opsplay starts after a run of its own (closing a
    cancelled window, releasing leases): the same environment, hosts, strategy and vault, the
    follow-up's own ``extravars``, no progress of its own (JSON output, a channel that passes
    notices on and shows nothing else)."""
    follow_up = RunOptions(
        env=env.name,
        limit=options.limit,
        as_json=True,  # no progress table of its own
        strategy=options.strategy,
        vault_password_file=options.vault_password_file,
        extravars=dict(extravars),
    )
    return follow_up, Channel(notice=channel.notice)


def run_query(
    settings: Settings,
    query: str,
    env_name: str | None,
    limit: str | None,
    as_json: bool,
    vault_password_file: str | None,
    verbosity: int,
    run_file_var: str | None = None,
    extravars: dict[str, Any] | None = None,
    channel: Channel | None = None,
) -> tuple[Environment, RunRecord, Path]:
    """A read-only query (``playbooks/queries/QUERY.yml``) as the query commands run it.

    No confirmation and no environment lock: it changes nothing, and must answer while a
    window or a backup runs. Kept in the history like any run. ``extravars``: the query's
    own options (e.g. ``opsplay backups --verify``).
    """
    from opsplay.content import playbooks_dir
    from opsplay.options import require_env

    env = load_environment(
        settings.inventories(), require_env(env_name), cache_dir=cache_dir(settings)
    )
    if vault_password_file and not Path(vault_password_file).is_file():
        raise OpsplayError(f"vault password file {vault_password_file} not found")
    options = RunOptions(
        env=env.name,
        limit=limit,
        as_json=as_json,
        verbosity=verbosity,
        vault_password_file=vault_password_file,
        extravars=dict(extravars or {}),
    )
    check_selection(env, options)
    playbook = playbooks_dir() / "queries" / f"{query}.yml"
    record, run_file = run_recorded(
        settings,
        env,
        playbook,
        query,
        options,
        channel or cli_channel(),
        run_file_var=run_file_var,
        quiet=True,
    )
    return env, record, run_file


def run_recorded(
    settings: Settings,
    env: Environment,
    playbook: Path,
    what: str,
    options: RunOptions,
    channel: Channel,
    run_file_var: str | None = None,
    quiet: bool = False,
    locked: bool = False,
    on_start: list[RunRecord] | None = None,
) -> tuple[RunRecord, Path]:
    """Run ``playbook`` through ansible-runner with live progress, kept in the history.

    No guard and no lock: callers decide (``execute`` for changes; read-only queries such as
    ``opsplay backups`` run without them). ``run_file_var`` names an extra var set to
    ``RUN_DIR/WHAT.json``, for a playbook that leaves a document there for its command to
    read; returns the record and that path (the run directory when ``run_file_var`` is None).
    ``quiet``: no per-task lines without a terminal (queries print their own table).

    Every run gets its ID as ``opsplay_run_id`` (maintenance windows record it on the hosts);
    ``locked``: the caller holds the environment lock for this run, said to the playbook as
    ``opsplay_environment_locked`` (no other run can be inside a window of this environment,
    so a window still open from another run was left by a run that is gone).
    """
    strategy = choose(options.strategy)
    if options.verbosity:
        channel.notice(strategy.reason)
    state_dir = private_dir(settings.state())
    history = History(state_dir, keep=settings.history_keep)
    run_id, run_dir = history.new_run_dir(env.name)
    record = RunRecord(
        id=run_id,
        env=env.name,
        what=what,
        check=options.check,
        started=time.time(),
        strategy=strategy.name,
    )
    history.save(record)
    if on_start is not None:
        on_start.append(record)  # the caller learns the run's ID even if it is interrupted
    extravars = {**options.extravars, "opsplay_run_id": run_id}
    if options.outside_window:
        record.outside_window = options.outside_window
        extravars["opsplay_outside_window_reason"] = options.outside_window
    if locked:
        extravars["opsplay_environment_locked"] = True
        # the lease names this lock: the next run holding it takes a gone run's leases over
        extravars["opsplay_lease_lock"] = str(state_dir / "locks" / f"{env.name}.lock")
    run_file = run_dir
    if run_file_var:
        run_file = run_dir / f"{what}.json"
        extravars[run_file_var] = str(run_file)
    stream = channel.display and options.verbosity > 0 and not options.as_json
    live = channel.display and sys.stderr.isatty() and not stream
    progress = Progress(
        f"{what} on {env.name}",
        live=live,
        quiet=quiet or options.as_json or stream or not channel.display,
        on_event=channel.on_event,
    )
    request = runner.RunRequest(
        playbook=playbook,
        inventory=list(env.sources),
        private_data_dir=run_dir,
        ident=run_id,
        extravars=extravars,
        extravar_files=options.extravar_files,
        limit=options.limit,
        tags=options.tags,
        skip_tags=options.skip_tags,
        forks=options.forks,
        check=options.check,
        diff=options.diff,
        verbosity=options.verbosity,
        vault_password_file=_path(options.vault_password_file),
        stream_output=stream,
        environment={
            **run_configuration(settings, state_dir, strategy).env,
            # roles that keep files on the control node (reports) find the state dir here
            "OPSPLAY_STATE_DIR": str(state_dir),
        },
        event_handler=progress.handle,
    )
    problem = None
    try:
        with progress:
            result = runner.run_playbook(request)
    except BaseException:
        # interrupted (or crashed) before ansible-runner returned: never left "running"
        record.status, record.exit_code = "canceled", int(ExitCode.INTERRUPTED)
        raise
    else:
        record.status, record.rc = result.status, result.rc
        record.exit_code = int(result.exit_code)
        record.artifacts = str(result.artifacts)
        problem, code = _bad_input(result, progress, options), ExitCode.USAGE
        if not problem:
            problem, code = _ansible_error(result)
        if not problem and result.died:
            record.status = "killed"
            problem, code = (
                f"ansible-playbook ended without its recap (rc {result.rc}): it was killed or "
                "died, and what it was doing may be half done on the hosts",
                ExitCode.ERROR,
            )
        if not problem:
            from opsplay.leases import refused_problem

            problem, code = refused_problem(result, what, env.name), ExitCode.LOCKED
        if problem:
            record.exit_code = int(code)
    finally:
        record.duration = round(time.time() - record.started, 2)
        record.hosts = progress.host_results()
        record.data = progress.data
        history.save(record)
        history.rotate()
    if problem:
        raise OpsplayError(problem, code)
    return record, run_file


def run_configuration(settings: Settings, state_dir: Path, strategy: Strategy) -> AnsibleConfig:
    """The Ansible configuration of a run: the team's ansible.cfg and ANSIBLE_* variables
    win key by key; opsplay's content (roles, callback, collection, strategy) is always found."""
    from opsplay import ansible_config

    own_paths = {
        "ANSIBLE_ROLES_PATH": [str(content.roles_dir())],
        # ansible-runner points this variable at its own callback directory, which hides
        # ansible.cfg's callback_plugins: opsplay_prefork (plugins loaded before the workers
        # fork) and opsplay_tether (ansible-playbook dies with opsplay) are named here for every run
        "ANSIBLE_CALLBACK_PLUGINS": [str(content.playbooks_dir() / "callback_plugins")],
        "ANSIBLE_CALLBACKS_ENABLED": ["opsplay_prefork", "opsplay_tether"],
        "ANSIBLE_COLLECTIONS_PATH": [str(content.collections_path(state_dir))],
        "ANSIBLE_STRATEGY_PLUGINS": [strategy.plugin_dir] if strategy.plugin_dir else [],
    }
    inventory_dir = settings.inventories()
    return ansible_config.resolve(
        content.ansible_cfg(),
        own_paths,
        inventory_dir=inventory_dir,
        own_extra={("defaults", "strategy"): strategy.name},
    )


def _bad_input(result: runner.RunResult, progress: Progress, options: RunOptions) -> str | None:
    """The one line when every failed host failed on bad input (its role's argument check, or
    input its role's module refused) and none was unreachable; else None."""
    if result.exit_code != ExitCode.HOSTS_FAILED:
        return None
    failures = {
        host: None
        if row["unreachable"] or host not in progress.hosts
        else progress.hosts[host].bad_input
        for host, row in progress.host_results().items()
        if row["failed"] or row["unreachable"]
    }
    return bad_input(failures, given_vars(options.extravars, options.extravar_files))


# Ansible's reasons that are the caller's input: a vault it cannot open (no password given,
# a wrong one, a vault ID with no secret).
_INPUT_REASONS = ("vault", "decrypt")


def _ansible_error(result: runner.RunResult) -> tuple[str | None, ExitCode]:
    """ansible-playbook's reason, in one line, when it failed before or outside a task: bad
    input (exit 2) for the vault, else an error (exit 1: a syntax error, a missing role or
    collection)."""
    reason = result.ansible_error()
    if reason is None:
        return None, ExitCode.ERROR
    if any(word in reason.lower() for word in _INPUT_REASONS):
        return f"ansible-playbook: {reason}", ExitCode.USAGE
    return f"ansible-playbook: {reason}", ExitCode.ERROR


def _path(value: str | None) -> Path | None:
    return Path(value).resolve() if value else None
