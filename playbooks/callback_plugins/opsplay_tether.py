"""ansible-playbook, and the processes it forks, die with the opsplay process that started them.

opsplay runs ansible-playbook through ansible-runner, in a pseudo-terminal of its own whose
hang-up ansible-playbook ignores (ansible-runner spawns it with SIGHUP ignored). When opsplay was
killed (SIGKILL, the OOM killer, a scheduler's timeout), nothing told its ansible-playbook: the
run went on with its hosts, silent, while the kernel had released opsplay's environment lock with
opsplay's death, so the next run could start on the same hosts. Measured on the lab: killed
while its weekly waited in the window's certificate check, ansible-playbook outlived opsplay for
the check's whole 60 s timeout.

This notification callback, loaded when the playbook starts and before its first play, asks the
kernel (Linux ``prctl(PR_SET_PDEATHSIG)``) to SIGKILL ansible-playbook when the opsplay thread
that started it ends, and then checks that opsplay is still there (had it died meanwhile,
ansible-playbook ends at once). The processes ansible-playbook forks from its main thread (the
per-task workers, Mitogen's connection multiplexer) get the same signal when ansible-playbook
ends. They would otherwise outlive it: the multiplexer can hang in its shutdown for good.

It acts only when opsplay names itself in ``OPSPLAY_PARENT_PID`` (``opsplay.runner`` does):
AWX, Molecule and plain ansible-playbook runs are left as they are. Where prctl does not exist
(not Linux) it does nothing, and says so with -vvv.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading

from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display

DOCUMENTATION = """
    name: opsplay_tether
    type: aggregate
    short_description: ansible-playbook and its forks die with the opsplay process that started it
    description:
      - When OPSPLAY_PARENT_PID names ansible-playbook's parent, asks the kernel to SIGKILL
        ansible-playbook when that parent ends, and the same for the processes it forks
        (workers, Mitogen's multiplexer) when ansible-playbook ends. Linux only.
    requirements:
      - enabled in ansible.cfg (callbacks_enabled); opsplay enables it for every run it makes
"""

PARENT_VARIABLE = "OPSPLAY_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

display = Display()


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "opsplay_tether"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        parent = os.environ.get(PARENT_VARIABLE, "")
        if parent.isdigit():
            tether(int(parent))


def tether(parent: int) -> bool:
    """Die with ``parent``, and make this process's own forks die with it. False where the
    kernel cannot do it."""
    if not die_with_parent():
        display.vvv("opsplay_tether: prctl(PR_SET_PDEATHSIG) is not available here")
        return False
    if os.getppid() != parent:  # opsplay died before the signal was asked for
        os.kill(os.getpid(), signal.SIGKILL)
    _Forks(os.getpid()).register()
    return True


def die_with_parent() -> bool:
    """SIGKILL this process when the thread that forked it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class _Forks:
    """The children ``top`` forks from its main thread die with it. A signal tied to another
    thread would come when that thread ends, not the process, so those children, and the
    children's own children (which inherit these hooks), are left alone."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.from_main_thread = False

    def register(self) -> None:
        os.register_at_fork(before=self.before, after_in_child=self.in_child)

    def before(self) -> None:
        self.from_main_thread = threading.current_thread() is threading.main_thread()

    def in_child(self) -> None:
        if self.from_main_thread and os.getppid() == self.top:
            die_with_parent()
