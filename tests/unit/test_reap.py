"""runner._reap: what a cancelled run leaves running (Mitogen's multiplexers, forked from
ansible-playbook into sessions of their own, can hang for good once it is SIGKILLed) is found by
the run's private directory on its command line and killed; nothing else is touched."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from opsplay import runner


def sleeper(*argv: str) -> subprocess.Popen:
    """A process in a session of its own with the marker only in its arguments, as the
    multiplexers have it; returned once it has exec'd (its command line is its own)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", *argv], start_new_session=True
    )
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    while argv[-1].encode() not in cmdline.read_bytes():
        time.sleep(0.01)
    return proc


def test_reap_kills_only_the_runs_own_leftovers(tmp_path):
    marker = str(tmp_path / "opsplay-20261130-120000.000-lab-abcd-x1y2")
    ours = sleeper("-e", f"@{marker}/extravars.json")
    other = sleeper("-e", f"@{tmp_path}/opsplay-20261130-120000.000-lab-ffff-zzzz/extravars.json")
    try:
        assert runner._reap(marker) == [ours.pid]
        assert ours.wait(timeout=10) == -9
        assert other.poll() is None
        assert runner._reap(marker) == []  # nothing left: a finished run finds nothing
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait()
