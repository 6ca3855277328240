"""opsplay_tether: ansible-playbook and what it forks from its main thread die with opsplay.

Each test starts a stand-in for opsplay (a Python process in a session of its own), which starts
the process under test; the test SIGKILLs the stand-in, as a kill of the whole controller would,
and looks at who is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsplay.content import playbooks_dir
from opsplay.execute import run_configuration
from opsplay.runner import _envvars
from opsplay.settings import Settings
from opsplay.state import private_dir
from opsplay.strategy import choose

REPO = Path(__file__).resolve().parents[2]
PLUGINS = playbooks_dir() / "callback_plugins"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

# opsplay's stand-in: starts the command in argv[1:] in a session of its own (as ansible-runner's
# pty does), with OPSPLAY_PARENT_PID naming itself (or not, with TETHER=0), and waits for it
STAND_IN = """
import os, subprocess, sys
env = dict(os.environ)
if env.pop("TETHER", "1") == "1":
    env["OPSPLAY_PARENT_PID"] = str(os.getpid())
child = subprocess.Popen(sys.argv[1:], env=env, stdin=subprocess.DEVNULL, start_new_session=True)
child.wait()
"""

# the process under test: tethers itself through the callback, forks one child from its main
# thread and one from another thread, writes the three pids to argv[1] and waits
TETHERED = """
import json, os, sys, threading, time
sys.path.insert(0, {plugins!r})
import opsplay_tether

parent = os.environ.get("OPSPLAY_PARENT_PID", "")
if parent:
    opsplay_tether.tether(int(parent))

def child():
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    return pid

pids = {{"self": os.getpid(), "main_fork": child()}}
thread = threading.Thread(target=lambda: pids.update(thread_fork=child()))
thread.start()
thread.join()
with open(sys.argv[1] + ".tmp", "w") as out:
    json.dump(pids, out)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def start_stand_in(command: list[str], *, tether: bool, env: dict[str, str] | None = None):
    return subprocess.Popen(
        [sys.executable, "-c", STAND_IN, *command],
        env={**(env or os.environ), "TETHER": "1" if tether else "0"},
        start_new_session=True,
    )


def wait_for(path: Path, seconds: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return json.loads(path.read_text())


def kill_stand_in(stand_in: subprocess.Popen) -> None:
    os.killpg(stand_in.pid, signal.SIGKILL)
    stand_in.wait(timeout=10)


def stand_in_killed(tmp_path: Path, leftovers: list[int], *, tether: bool) -> dict[str, int]:
    """Start TETHERED under a stand-in, SIGKILL the stand-in once TETHERED has forked its two
    children; their pids and TETHERED's own (all cleaned up after the test)."""
    pids_file = tmp_path / "pids.json"
    script = TETHERED.format(plugins=str(PLUGINS))
    stand_in = start_stand_in([sys.executable, "-c", script, str(pids_file)], tether=tether)
    pids = wait_for(pids_file)
    leftovers.extend(pids.values())
    kill_stand_in(stand_in)
    return pids


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")


@LINUX_ONLY
def test_the_process_and_its_main_thread_forks_die_with_opsplay(tmp_path, leftovers):
    pids = stand_in_killed(tmp_path, leftovers, tether=True)
    assert gone_within([pids["self"], pids["main_fork"]], 10)
    # a child forked from another thread would get the signal when that thread ends: untouched
    assert alive(pids["thread_fork"])


@LINUX_ONLY
def test_without_opsplay_naming_itself_nothing_is_tethered(tmp_path, leftovers):
    pids = stand_in_killed(tmp_path, leftovers, tether=False)
    assert not gone_within(list(pids.values()), 2)  # AWX, Molecule, plain ansible-playbook


@LINUX_ONLY
def test_a_process_whose_opsplay_is_already_gone_ends_at_once():
    script = f"import sys; sys.path.insert(0, {str(PLUGINS)!r}); import opsplay_tether; "
    script += "opsplay_tether.tether(1); print('went on')"  # pid 1 is not its parent
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert ran.returncode == -signal.SIGKILL and "went on" not in ran.stdout


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.command: sh -c 'touch {started}; exec sleep 30'
      changed_when: false
"""


def playbook_processes(marker: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


@LINUX_ONLY
@pytest.mark.parametrize("tether", [True, False])
def test_ansible_playbook_dies_with_opsplay_when_opsplay_runs_it(tmp_path, leftovers, tether):
    # a real ansible-playbook, its worker busy in a silent task, with opsplay's callback settings
    started = tmp_path / "started"
    playbook = tmp_path / f"tether-{os.getpid()}-{tether}.yml"
    playbook.write_text(PLAYBOOK.format(started=started))
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")},
        "ANSIBLE_CALLBACK_PLUGINS": str(PLUGINS),
        "ANSIBLE_CALLBACKS_ENABLED": "opsplay_tether",
    }
    command = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook)]
    command += ["-e", f"ansible_python_interpreter={sys.executable}"]
    stand_in = start_stand_in(command, tether=tether, env=env)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline and stand_in.poll() is None, "the task never started"
        time.sleep(0.05)
    # ansible-playbook and its worker (the stand-in's command line names the playbook too)
    ansible = [pid for pid in playbook_processes(playbook.name) if pid != stand_in.pid]
    leftovers.extend(ansible)
    assert len(ansible) >= 2
    kill_stand_in(stand_in)
    if tether:
        assert gone_within(ansible, 10)
    else:
        assert not gone_within(ansible, 3)  # the stock behaviour, which the callback changes
    subprocess.run(["pkill", "-f", str(started)], check=False)  # the task's own sleep


def test_opsplay_names_itself_and_enables_the_callback_for_its_runs(tmp_path):
    assert _envvars()["OPSPLAY_PARENT_PID"] == str(os.getpid())
    settings = Settings(inventory_dir=str(REPO / "inventories"), state_dir=str(tmp_path / "s"))
    env = run_configuration(settings, private_dir(tmp_path / "s"), choose("auto")).env
    assert env["ANSIBLE_CALLBACK_PLUGINS"].split(os.pathsep)[0] == str(PLUGINS)
    assert "opsplay_tether" in env["ANSIBLE_CALLBACKS_ENABLED"].split(",")
    assert (PLUGINS / "opsplay_tether.py").is_file()
