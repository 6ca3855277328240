"""Exit codes come from ansible-runner's status and ansible-playbook's rc."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsplay.errors import ExitCode
from opsplay.runner import RunResult

STATS = {"ok": {"h": 1}}


@pytest.mark.parametrize(
    "status,rc,stats,code",
    [
        ("successful", 0, STATS, ExitCode.OK),
        ("failed", 2, STATS, ExitCode.HOSTS_FAILED),
        ("failed", 4, STATS, ExitCode.HOSTS_UNREACHABLE),
        ("failed", 4, None, ExitCode.ERROR),  # parse error: no play ran
        ("failed", 1, None, ExitCode.ERROR),
        ("failed", 5, None, ExitCode.ERROR),
        ("canceled", 254, STATS, ExitCode.INTERRUPTED),
        ("timeout", 254, STATS, ExitCode.ERROR),
    ],
)
def test_mapping(status, rc, stats, code):
    assert RunResult(status, rc, stats, Path("/nonexistent")).exit_code == code


def test_codes_are_distinct():
    values = [c.value for c in ExitCode]
    assert len(values) == len(set(values))
    assert ExitCode.USAGE == 2


def test_a_playbook_killed_is_told_from_one_that_failed(tmp_path):
    """No recap and no [ERROR] of its own: ansible-playbook died (killed), so its `always:`
    never ran and opsplay closes a window itself; a syntax error or a failed host is not that."""
    (tmp_path / "stdout").write_text("PLAY [weekly] ***\nTASK [Turn maintenance mode on] ***\n")
    assert RunResult("failed", 1, None, tmp_path).died
    assert not RunResult("failed", 2, STATS, tmp_path).died  # hosts failed: a recap
    assert not RunResult("canceled", 254, None, tmp_path).died  # opsplay's own cancel
    assert not RunResult("failed", 1, None, tmp_path / "none").died  # never started: no output
    (tmp_path / "stdout").write_text("[ERROR]: couldn't resolve module/action 'x'\n")
    assert not RunResult("failed", 4, None, tmp_path).died  # ansible-playbook said why
