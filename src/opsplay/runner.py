"""The one module that calls ansible-runner.

Each run gets its own private data dir (``STATE/runs/ID``) whose artifacts (stdout, events,
status, rc) are kept as history. Inputs that may hold secrets never stay there: extra vars go
through a 0600 file in a private temporary directory (removed after the run), ansible-runner is
told not to write its ``env/`` files, and the environment dump it writes into the ``command``
artifact is removed once the run ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsplay.errors import ExitCode

EventHandler = Callable[[dict[str, Any]], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class RunRequest:
    playbook: Path
    inventory: list[Path]  # sources, one -i each
    private_data_dir: Path
    ident: str
    extravars: dict[str, Any] = field(default_factory=dict)
    extravar_files: list[Path] = field(default_factory=list)
    limit: str | None = None
    tags: str | None = None
    skip_tags: str | None = None
    forks: int | None = None
    check: bool = False
    diff: bool = False
    verbosity: int = 0
    vault_password_file: Path | None = None
    stream_output: bool = False  # echo ansible's own output (with -v)
    environment: dict[str, str] = field(default_factory=dict)  # for the playbook's lookups
    event_handler: EventHandler | None = None


@dataclass
class RunResult:
    status: str  # ansible-runner's: successful, failed, canceled, timeout
    rc: int
    stats: dict[str, Any] | None
    artifacts: Path

    def ansible_error(self) -> str | None:
        """ansible-playbook's own reason when it stopped before or outside a task (no play
        ran, so no stats): the first line of its first ``[ERROR]``, colours removed."""
        if self.status == "successful" or self.stats is not None:
            return None
        try:
            text = (self.artifacts / "stdout").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        for line in _ANSI.sub("", text).splitlines():
            if line.startswith(("[ERROR]:", "ERROR!")):
                reason = line.split(":", 1)[1] if line.startswith("[") else line[6:]
                return reason.strip() or None
        return None

    @property
    def died(self) -> bool:
        """ansible-playbook ended without its recap and without a reason of its own: killed (a
        signal, the OOM killer) rather than failed, so its `always:` sections never ran."""
        if self.status in ("successful", "canceled") or self.stats is not None:
            return False
        if self.ansible_error() is not None:
            return False
        try:  # it had started its plays (not one that could not even start)
            text = (self.artifacts / "stdout").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return "PLAY [" in text

    @property
    def exit_code(self) -> ExitCode:
        """opsplay's exit code, from ansible-runner's status and ansible-playbook's rc."""
        if self.status == "successful":
            return ExitCode.OK
        if self.status == "canceled":
            return ExitCode.INTERRUPTED
        if self.rc == 2:
            return ExitCode.HOSTS_FAILED
        # ansible-playbook uses 4 for unreachable hosts and for parse errors; only a play that
        # ran produced stats.
        if self.rc == 4 and self.stats is not None:
            return ExitCode.HOSTS_UNREACHABLE
        return ExitCode.ERROR


def run_playbook(request: RunRequest) -> RunResult:
    import ansible_runner  # heavy: imported only when a playbook runs

    secret_dir = Path(tempfile.mkdtemp(prefix=f"opsplay-{request.ident}-", dir=_private_tmp()))
    # everything ansible-runner writes is private; ansible-runner installs its own SIGINT and
    # SIGTERM handlers in the main thread (to cancel the run): the caller's come back after
    with _private_umask(), _caller_signal_handlers():
        try:
            cmdline = _cmdline(request, secret_dir)
            runner = ansible_runner.run(
                private_data_dir=str(request.private_data_dir),
                ident=request.ident,
                playbook=str(request.playbook),
                inventory=[str(source) for source in request.inventory],
                limit=request.limit,
                tags=request.tags,
                skip_tags=request.skip_tags,
                forks=request.forks,
                verbosity=request.verbosity or None,
                cmdline=shlex.join(cmdline) if cmdline else None,
                envvars={**_envvars(), **request.environment},
                suppress_env_files=True,
                quiet=not request.stream_output,
                event_handler=_keep_events(request.event_handler),
                project_dir=str(request.playbook.parent),
            )
        finally:
            _reap(str(secret_dir))
            shutil.rmtree(secret_dir, ignore_errors=True)
    artifacts = request.private_data_dir / "artifacts" / request.ident
    _scrub(request.private_data_dir, artifacts)
    return RunResult(
        status=str(runner.status),
        rc=int(runner.rc if runner.rc is not None else 1),
        stats=runner.stats,
        artifacts=artifacts,
    )


_UMASK_LOCK = threading.Lock()
_UMASK_USERS = 0
_UMASK_SAVED = 0


@contextmanager
def _private_umask() -> Iterator[None]:
    """umask 077 while any run of this process goes on, the caller's again after the last one
    (the umask belongs to the whole process: runs in other threads share it)."""
    global _UMASK_USERS, _UMASK_SAVED
    with _UMASK_LOCK:
        if _UMASK_USERS == 0:
            _UMASK_SAVED = os.umask(0o077)
        _UMASK_USERS += 1
    try:
        yield
    finally:
        with _UMASK_LOCK:
            _UMASK_USERS -= 1
            if _UMASK_USERS == 0:
                os.umask(_UMASK_SAVED)


@contextmanager
def _caller_signal_handlers() -> Iterator[None]:
    """The SIGINT/SIGTERM handlers as they were before ansible-runner replaced them."""
    if threading.current_thread() is not threading.main_thread():
        yield  # ansible-runner installs none outside the main thread
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _reap(marker: str) -> list[int]:
    """Kill the processes a run left behind, found by ``marker`` (the run's private directory,
    which the extra-vars path puts on every command line of its ansible-playbook).

    A cancelled run's ansible-playbook is SIGKILLed with its process group by ansible-runner;
    Mitogen's connection multiplexers, forked from it into sessions of their own, then hang
    in their shutdown for good (measured: two per cancelled run at 2 cores, ~57 MB each).
    opsplay_tether has the kernel kill them with ansible-playbook on Linux; this stays for what
    it cannot reach (another kernel, a fork from a thread). A run that ended by itself leaves
    none, and then this finds nothing.
    """
    proc, me, killed = Path("/proc"), os.getuid(), []
    if not proc.is_dir():
        return killed
    needle = marker.encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != me or needle not in (entry / "cmdline").read_bytes():
                continue
            os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours
        killed.append(int(entry.name))
    return killed


def _cmdline(request: RunRequest, secret_dir: Path) -> list[str]:
    args: list[str] = []
    if request.extravars:
        path = secret_dir / "extravars.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(request.extravars, handle)
        args += ["-e", f"@{path}"]
    for path in request.extravar_files:
        args += ["-e", f"@{path}"]
    if request.vault_password_file:
        args += ["--vault-password-file", str(request.vault_password_file)]
    if request.check:
        args.append("--check")
    if request.diff:
        args.append("--diff")
    return args


def _envvars() -> dict[str, str]:
    # ansible-playbook lives beside our interpreter (the venv's bin), which need not be on PATH
    # when opsplay is called as .venv/bin/opsplay, from cron or from a systemd unit. The Ansible
    # configuration (ANSIBLE_CONFIG and opsplay's defaults) comes with the request's environment
    # (opsplay.ansible_config, chosen by the caller).
    # OPSPLAY_PARENT_PID: ansible-playbook (a child of this process, in a pty that ignores
    # SIGHUP) dies with it (playbooks/callback_plugins/opsplay_tether.py)
    return {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "OPSPLAY_PARENT_PID": str(os.getpid()),
    }


def _keep_events(handler: EventHandler | None) -> Callable[[dict[str, Any]], bool]:
    def on_event(event: dict[str, Any]) -> bool:
        if handler is not None:
            handler(event)
        return True  # keep the event in the artifacts

    return on_event


def _private_tmp() -> str | None:
    """Prefer memory-backed /dev/shm so per-run inputs never touch a disk."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _scrub(private_data_dir: Path, artifacts: Path) -> None:
    """Remove what ansible-runner keeps of the run's inputs; keep only the output artifacts,
    private: Ansible's fact cache writes its files 0644 whatever the umask (the run gate's
    facts, e.g. the lease holder, land there)."""
    shutil.rmtree(private_data_dir / "env", ignore_errors=True)
    for cached in artifacts.glob("fact_cache/*"):
        with contextlib.suppress(OSError):
            cached.chmod(0o600)
    command = artifacts / "command"
    try:
        data = json.loads(command.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    data.pop("env", None)  # the whole process environment: may hold passwords
    command.write_text(json.dumps(data), encoding="utf-8")
