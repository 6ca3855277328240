"""One run per environment: an flock on ``STATE/locks/ENV.lock``.

The kernel releases an flock when its holder dies, so a crashed run never blocks the next one;
the file's content only names the holder for the message.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opsplay.errors import Locked
from opsplay.state import private_dir


@contextmanager
def environment_lock(state_dir: Path, env: str, command: str) -> Iterator[None]:
    path = private_dir(state_dir / "locks") / f"{env}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(path)
            raise Locked(f"environment '{env}' is locked by {holder}", holder=holder) from None
        holder = {
            "pid": os.getpid(),
            "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the flock


def _describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "another run (holder unknown)"
    return f"pid {holder.get('pid')} ({holder.get('command')}) since {holder.get('started')}"
