"""The state directory: run history (ansible-runner artifacts + a summary per run) and locks.

Everything under it is private: directories 0700, files 0600.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsplay.errors import OpsplayError

RECORD = "run.json"
DEFAULT_KEEP = 50


def state_root(explicit: str | Path | None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "opsplay"


def private_dir(path: Path) -> Path:
    """Create ``path`` and every missing parent 0700, whatever the umask (``mkdir(parents=True)``
    gives parents the umask's mode, e.g. 0755), and make ``path`` itself 0700."""
    try:
        missing = []
        for parent in (path, *path.parents):
            if parent.is_dir():
                break
            missing.append(parent)
        for directory in reversed(missing):
            directory.mkdir(mode=0o700, exist_ok=True)
            directory.chmod(0o700)
        path.chmod(0o700)
    except OSError as exc:
        raise OpsplayError(f"cannot use state directory {path}: {exc.strerror}") from None
    return path


def write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


@dataclass
class RunRecord:
    id: str
    env: str
    what: str
    check: bool
    started: float
    status: str = "running"
    rc: int | None = None
    exit_code: int | None = None
    duration: float | None = None
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: str = ""
    strategy: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # the roles' set_stats reports
    # why a disruptive run went outside the calendar's windows (--outside-window), or why a
    # refused one did not run (status "missed")
    outside_window: str = ""

    @property
    def totals(self) -> dict[str, int]:
        keys = ("ok", "changed", "failed", "unreachable", "skipped")
        return {k: sum(int(h.get(k, 0)) for h in self.hosts.values()) for k in keys}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started))
        data["totals"] = self.totals
        return data


class History:
    """Run directories under ``STATE/runs/ID/``, newest last."""

    def __init__(self, state_dir: Path, keep: int = DEFAULT_KEEP) -> None:
        self.root = state_dir / "runs"
        self.keep = keep

    def new_run_dir(self, env: str) -> tuple[str, Path]:
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
        run_id = f"{stamp}-{env}-{secrets.token_hex(2)}"
        return run_id, private_dir(self.root / run_id)

    def save(self, record: RunRecord) -> None:
        data = json.dumps(record.to_json(), indent=2, sort_keys=True)
        write_private(self.root / record.id / RECORD, data)

    def records(self, env: str | None = None) -> list[RunRecord]:
        if not self.root.is_dir():
            return []
        found = []
        for run_dir in sorted(self.root.iterdir()):
            record = self._load(run_dir)
            if record and (env is None or record.env == env):
                found.append(record)
        return found

    def get(self, run_id: str) -> RunRecord:
        record = self._load(self.root / run_id) if "/" not in run_id else None
        if record is None:
            matches = [r for r in self.records() if r.id.startswith(run_id)]
            if len(matches) != 1:
                raise OpsplayError(f"no run '{run_id}' in {self.root}")
            record = matches[0]
        return record

    def rotate(self) -> None:
        """Keep the newest ``keep`` runs, and the newest run of every (env, what).

        Frequent runs (a status poll every few minutes) must not push out the only record
        of last week's window, which ``opsplay status`` reports.
        """
        if not self.root.is_dir() or self.keep <= 0:
            return
        run_dirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        newest_of_kind: dict[tuple[str, str], Path] = {}
        for run_dir in run_dirs:  # oldest first: the last one seen is the newest
            record = self._load(run_dir)
            if record is not None:
                newest_of_kind[(record.env, record.what)] = run_dir
        keep = set(newest_of_kind.values())
        for old in run_dirs[: max(0, len(run_dirs) - self.keep)]:
            if old not in keep:
                shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def _load(run_dir: Path) -> RunRecord | None:
        try:
            data = json.loads((run_dir / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        fields = set(RunRecord.__dataclass_fields__)
        return RunRecord(**{k: v for k, v in data.items() if k in fields})
