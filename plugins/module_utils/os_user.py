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

``module_as_user(module, name, work)`` is ``as_user`` as a module's ``main()`` uses it: a module
that cannot switch exits unchanged with ``needs_become`` (the role's fallback then runs it
through become), a child without a result fails the module in one line. ``own_directory`` is
root's part before the drop when the work writes into a directory of the user's (the directory
``ansible.builtin.file`` would make with ``owner``, ``group`` and ``mode``, without its own
task and interpreter).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import pwd
import stat
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


def module_as_user(module, name: str, work, preload: tuple = (), errors: tuple = ()):
    """``as_user(name, work, preload)`` for a module's main(): work()'s return value. When this
    process cannot switch to ``name`` the module exits unchanged with ``needs_become: true``
    and the reason (the role then runs it again through become); ChildFailed, or an exception
    of ``errors``, fails the module with its text."""
    try:
        return as_user(name, work, preload)
    except NeedsBecome as exc:
        module.exit_json(changed=False, needs_become=True, msg=str(exc))
    except (ChildFailed, *errors) as exc:
        module.fail_json(msg=str(exc))


def own_directory(path: str, name: str, mode: int = 0o700, check: bool = False) -> bool:
    """Make ``path`` a directory of OS user ``name``: owned by it and its primary group, with
    ``mode``. True when that changed something (in check mode: would change; nothing is touched).

    As root: a missing directory is created (missing parents root's, 0755), owner, group and
    mode set. As ``name`` itself: a directory of its own gets its group and mode; a missing one,
    or another user's, needs root: NeedsBecome. As anyone else: NeedsBecome. No ``name``:
    nothing to do (False). Not a directory: NotADirectoryError."""
    if not name:
        return False
    try:
        target = pwd.getpwnam(name)
    except KeyError:
        raise ChildFailed("OS user %s does not exist on the host" % name) from None
    euid = os.geteuid()
    if euid not in (0, target.pw_uid):
        raise NeedsBecome(
            "running as uid %d: only root can give %s to OS user %s" % (euid, path, name)
        )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(20, "Not a directory", path)
    if euid != 0 and (st is None or st.st_uid != target.pw_uid):
        raise NeedsBecome(
            "%s is %s: only root can make it OS user %s's"
            % (path, "missing" if st is None else "uid %d's" % st.st_uid, name)
        )
    if st is None:
        if not check:
            parent = os.path.dirname(os.path.normpath(path))
            os.makedirs(parent, mode=0o755, exist_ok=True)
            os.mkdir(path, mode)
            os.chown(path, target.pw_uid, target.pw_gid)
            os.chmod(path, mode)  # whatever the umask
        return True
    changed = False
    if (st.st_uid, st.st_gid) != (target.pw_uid, target.pw_gid):
        changed = True
        if not check:
            os.chown(path, target.pw_uid, target.pw_gid)
    if stat.S_IMODE(st.st_mode) != mode:
        changed = True
        if not check:
            os.chmod(path, mode)
    return changed


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
