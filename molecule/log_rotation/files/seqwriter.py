#!/usr/bin/env python3
"""Append sequence numbers to a log as fast as possible; reopen it on SIGHUP (as nginx does on
USR1), stop on SIGTERM. Usage: seqwriter.py LOG PIDFILE. On exit writes the last number to
PIDFILE with .last instead of .pid and removes PIDFILE."""

import os
import signal
import sys
import time

log, pidfile = sys.argv[1], sys.argv[2]
flags = {"reopen": False, "stop": False}
signal.signal(signal.SIGHUP, lambda *_: flags.__setitem__("reopen", True))
signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))


def open_log() -> int:
    return os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)


fd = open_log()
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
n = 0
while not flags["stop"]:
    if flags["reopen"]:
        flags["reopen"] = False
        os.close(fd)
        fd = open_log()
    os.write(fd, b"%d\n" % n)
    n += 1
    if n % 50 == 0:
        time.sleep(0.001)
os.close(fd)
with open(pidfile[: -len(".pid")] + ".last", "w") as f:
    f.write(str(n - 1))
os.unlink(pidfile)
