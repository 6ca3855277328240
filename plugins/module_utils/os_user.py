"""Run a module's work as another OS user without a second Ansible become (issue 20).

A module that connects to PostgreSQL over the unix socket as the ``postgres`` role needs to run
as the ``postgres`` OS user (Debian's ``local all postgres peer``: the server checks the user of
the connecting process). Ansible's ``become_user: postgres`` does that by starting another
Python interpreter on the host; under Mitogen that is a new interpreter with Mitogen bootstrapped
into it, ~0.5 s per run on the lab, more than the whole module on a database with nothing to do.

``as_user(name, work)`` gives the same separation for the price of a fork when Ansible already
runs the module as root: ``work()`` runs in a forked child that has dropped to ``name`` for good
(its groups, gid, uid, HOME; it cannot regain root), and its return value, or the exception it
raised, comes back to the module through a pipe. When the module already runs as ``name``, or no
user is asked for, ``work()`` runs in this process. Any other user cannot switch:
``NeedsBecome`` (the role then runs the module again through Ansible's become).

``preload``: modules the work imports, imported before the fork (under Mitogen the child has no
broker thread to fetch a module it has not got: everything it needs is imported first).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import pwd
import warnings


class NeedsBecome(Exception):
    """This process can neither be nor become the user asked for: Ansible's become is needed."""


class ChildFailed(Exception):
    """The child ended without a result (killed, or it could not drop to the user)."""


def as_user(name: str, work, preload: tuple = ()):
    """``work()``'s return value, computed as OS user ``name`` (see the module docstring); the
    exception it raised is raised here. NeedsBecome when this process cannot switch to
    ``name``; ChildFailed when the child gave no result."""
    if not name:
        return work()
    try:
        target = pwd.getpwnam(name)
    except KeyError:
        raise ChildFailed("OS user %s does not exist on the host" % name) from None
    euid = os.geteuid()
    if euid == target.pw_uid:
        return work()
    if euid != 0:
        raise NeedsBecome(
            "running as uid %d: only root can switch to OS user %s without become" % (euid, name)
        )
    for module in preload:
        with contextlib.suppress(ImportError):  # the work says what is missing, in its words
            __import__(module)
    return _in_child(target, work)


def _in_child(target: pwd.struct_passwd, work):
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads (Mitogen's broker): the child
        # only runs ``work`` and leaves with os._exit, never touching those threads' state.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's lines run in another process
        os.close(read_end)
        _child(target, work, write_end)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if not data:
        raise ChildFailed(
            "the work as OS user %s ended without a result (%s)" % (target.pw_name, _ended(status))
        )
    ok, value = pickle.loads(data)  # written by our own fork
    if ok:
        return value
    raise value


def _child(target: pwd.struct_passwd, work, write_end: int):  # pragma: no cover - in the child
    code = 0
    try:
        try:
            _drop(target)
        except OSError as exc:
            outcome = (
                False,
                ChildFailed("cannot switch to OS user %s: %s" % (target.pw_name, exc)),
            )
        else:
            try:
                outcome = (True, work())
            except Exception as exc:  # the parent raises it
                outcome = (False, exc)
        try:
            payload = pickle.dumps(outcome)
        except Exception as exc:  # unpicklable: its text
            payload = pickle.dumps((False, ChildFailed("%s: %s" % (type(exc).__name__, exc))))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
    except BaseException:  # no result: ChildFailed
        code = 1
    os._exit(code)


def _drop(target: pwd.struct_passwd) -> None:  # pragma: no cover - in the child
    """Become ``target`` for good, as ``sudo -H -u`` would: no stdin/stdout/stderr of the
    module's (the result goes through the pipe), its groups, gid, then uid; HOME, USER, LOGNAME
    its own; the working directory its home (or /)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.setgroups(os.getgrouplist(target.pw_name, target.pw_gid))
    os.setgid(target.pw_gid)
    os.setuid(target.pw_uid)
    if os.getuid() != target.pw_uid or os.geteuid() != target.pw_uid:
        raise OSError("could not drop to uid %d" % target.pw_uid)
    os.environ.update(HOME=target.pw_dir, USER=target.pw_name, LOGNAME=target.pw_name)
    try:
        os.chdir(target.pw_dir)
    except OSError:
        os.chdir("/")


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return "killed by signal %d" % os.WTERMSIG(status)
    return "exit %d" % os.waitstatus_to_exitcode(status)
