"""plugins/module_utils/os_user.py's own_directory (root's part before a drop: the directory the
work writes into, made the OS user's) and module_as_user (as_user for a module's main():
needs_become, one-line failures). Real directories, chown and modes as root (the tests run as
root on the lab machine and in CI's container; those are skipped otherwise)."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import os_user

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
NOBODY = pwd.getpwnam("nobody")


def owner_group_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


NOBODYS = (NOBODY.pw_uid, NOBODY.pw_gid, 0o700)


@root_only
def test_root_creates_the_directory_and_its_parents_for_the_user(tmp_path: Path) -> None:
    target = tmp_path / "var" / "backups"
    assert os_user.own_directory(str(target), "nobody") is True
    assert owner_group_mode(target) == NOBODYS
    assert owner_group_mode(target.parent) == (0, 0, 0o755)  # parents root's
    assert os_user.own_directory(str(target), "nobody") is False  # as wanted: no change


@root_only
def test_root_gives_an_existing_directory_to_the_user_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "backups"
    target.mkdir(mode=0o755)
    assert os_user.own_directory(str(target), "nobody") is True
    assert owner_group_mode(target) == NOBODYS
    target.chmod(0o750)
    assert os_user.own_directory(str(target), "nobody", mode=0o700) is True
    assert owner_group_mode(target) == NOBODYS


@root_only
def test_check_mode_says_it_would_change_and_touches_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "a" / "backups"
    assert os_user.own_directory(str(missing), "nobody", check=True) is True
    assert not (tmp_path / "a").exists()
    wrong = tmp_path / "wrong"
    wrong.mkdir(mode=0o755)
    assert os_user.own_directory(str(wrong), "nobody", check=True) is True
    assert owner_group_mode(wrong) == (0, 0, 0o755)


def test_no_user_leaves_the_directory_alone(tmp_path: Path) -> None:
    assert os_user.own_directory(str(tmp_path / "backups"), "") is False
    assert not (tmp_path / "backups").exists()


def test_a_file_in_its_place_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "backups").write_text("")
    me = pwd.getpwuid(os.geteuid()).pw_name
    with pytest.raises(NotADirectoryError):
        os_user.own_directory(str(tmp_path / "backups"), me)


def test_as_the_user_its_own_directory_gets_its_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "backups"
    target.mkdir(mode=0o755)
    me = pwd.getpwuid(os.geteuid())
    monkeypatch.setattr(os_user.os, "geteuid", lambda: me.pw_uid)
    if me.pw_gid != target.stat().st_gid:  # pragma: no cover - a setgid tmp
        os.chown(target, -1, me.pw_gid)
    assert os_user.own_directory(str(target), me.pw_name) is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


@pytest.mark.parametrize("state", ["missing", pytest.param("another user's", marks=root_only)])
def test_as_the_user_a_directory_missing_or_not_its_own_needs_become(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    target = tmp_path / "backups"
    if state != "missing":
        target.mkdir()
        os.chown(target, 4243, 4243)
    monkeypatch.setattr(os_user.os, "geteuid", lambda: NOBODY.pw_uid)
    with pytest.raises(os_user.NeedsBecome, match="only root can make it OS user nobody's"):
        os_user.own_directory(str(target), "nobody")
    monkeypatch.undo()
    assert target.exists() == (state != "missing")
    if state != "missing":
        assert target.stat().st_uid == 4243


def test_another_user_without_root_needs_become(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os_user.os, "geteuid", lambda: 4242)
    with pytest.raises(os_user.NeedsBecome, match="uid 4242: only root can give"):
        os_user.own_directory(str(tmp_path / "backups"), "nobody")
    assert not (tmp_path / "backups").exists()


def test_an_unknown_user_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(os_user.ChildFailed, match="OS user no-such-user-x does not exist"):
        os_user.own_directory(str(tmp_path), "no-such-user-x")


# -- module_as_user -------------------------------------------------------------------------------


class Exited(Exception):
    pass


class Module:
    def exit_json(self, **result):
        raise Exited("exit", result)

    def fail_json(self, **result):
        raise Exited("fail", result)


def ended(work, name: str = "", errors: tuple = ()) -> tuple:
    with pytest.raises(Exited) as end:
        os_user.module_as_user(Module(), name, work, errors=errors)
    return end.value.args


def test_module_as_user_returns_the_works_value() -> None:
    assert os_user.module_as_user(Module(), "", lambda: {"msg": "done"}) == {"msg": "done"}


def test_module_that_cannot_switch_exits_unchanged_asking_for_become(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os_user.os, "geteuid", lambda: 4242)
    ran = []
    kind, result = ended(lambda: ran.append(1), "nobody")
    assert kind == "exit" and ran == []
    assert result == {
        "changed": False,
        "needs_become": True,
        "msg": "running as uid 4242: only root can switch to OS user nobody without become",
    }


def test_module_fails_in_one_line_on_a_child_failure_or_a_named_error() -> None:
    assert ended(lambda: None, "no-such-user-x") == (
        "fail",
        {"msg": "OS user no-such-user-x does not exist on the host"},
    )

    def refuse() -> None:
        raise LookupError("no such table")

    assert ended(refuse, errors=(LookupError,)) == ("fail", {"msg": "no such table"})
    with pytest.raises(ValueError, match="a bug"):  # anything else is not a module failure
        os_user.module_as_user(Module(), "", lambda: int("a bug"))
