"""plugins/module_utils/os_user.py: a module's work as another OS user, in a forked child when
the module runs as root (no second Ansible become, issue 20). Real forks and a real drop to
``nobody`` (the tests run as root on the lab machine and in CI's container; skipped otherwise)."""

from __future__ import annotations

import os
import pwd
import signal

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import os_user
from ansible_collections.opsplay.ops.plugins.module_utils.postgres import PostgresError

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
NOBODY = pwd.getpwnam("nobody")


def whoami() -> dict:
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "home": os.environ.get("HOME"),
        "pid": os.getpid(),
    }


@root_only
def test_root_runs_the_work_as_the_user_in_a_child() -> None:
    seen = os_user.as_user("nobody", whoami)
    assert seen["uid"] == seen["euid"] == NOBODY.pw_uid
    assert seen["gid"] == NOBODY.pw_gid and 0 not in seen["groups"]
    assert seen["home"] == NOBODY.pw_dir
    assert seen["pid"] != os.getpid()
    assert os.geteuid() == 0  # the module itself stays root


@root_only
def test_the_child_cannot_regain_root() -> None:
    def regain() -> str:
        try:
            os.setuid(0)
        except PermissionError:
            return "refused"
        return "root again"

    assert os_user.as_user("nobody", regain) == "refused"


@root_only
def test_the_works_exception_is_raised_in_the_module() -> None:
    def fail() -> None:
        raise PostgresError("PostgreSQL postgres@/var/run/postgresql:5432 is not reachable")

    with pytest.raises(PostgresError, match="is not reachable"):
        os_user.as_user("nobody", fail)


@root_only
def test_a_large_result_comes_back_whole() -> None:
    big = {"rows": ["x" * 100] * 20000}
    assert os_user.as_user("nobody", lambda: big) == big


@root_only
def test_a_child_killed_gives_one_line() -> None:
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(
        os_user.ChildFailed, match=r"nobody ended without a result \(killed by signal 9"
    ):
        os_user.as_user("nobody", die)


def test_the_same_user_or_none_runs_in_this_process() -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert os_user.as_user(me, whoami)["pid"] == os.getpid()
    assert os_user.as_user("", whoami)["pid"] == os.getpid()


def test_another_user_without_root_needs_become(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os_user.os, "geteuid", lambda: 4242)
    with pytest.raises(
        os_user.NeedsBecome, match="uid 4242: only root can switch to OS user nobody"
    ):
        os_user.as_user("nobody", whoami)


def test_an_unknown_user_is_one_line() -> None:
    with pytest.raises(os_user.ChildFailed, match="OS user no-such-user-x does not exist"):
        os_user.as_user("no-such-user-x", whoami)
