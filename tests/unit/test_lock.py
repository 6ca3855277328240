"""The per-environment lock: a second run exits at once naming the holder;
a dead holder frees it."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from opsplay.errors import ExitCode, OpsplayError
from opsplay.lock import environment_lock


def test_second_holder_is_refused_with_holder_named(tmp_path):
    with (
        environment_lock(tmp_path, "prod", "opsplay run vacuum --env prod"),
        pytest.raises(OpsplayError) as refused,
        environment_lock(tmp_path, "prod", "opsplay run health --env prod"),
    ):
        pass
    assert refused.value.code == ExitCode.LOCKED
    assert f"pid {os.getpid()}" in refused.value.message
    assert "opsplay run vacuum --env prod" in refused.value.message


def test_other_environments_are_independent(tmp_path):
    with environment_lock(tmp_path, "prod", "a"), environment_lock(tmp_path, "staging", "b"):
        pass


def test_released_after_use(tmp_path):
    with environment_lock(tmp_path, "dev", "first"):
        pass
    with environment_lock(tmp_path, "dev", "second"):
        pass


def _hold_forever(state_dir, ready):
    with environment_lock(state_dir, "dev", "killed run"):
        ready.set()
        signal.pause()


def test_lock_of_a_dead_process_does_not_block(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_forever, args=(tmp_path, ready))
    holder.start()
    assert ready.wait(10)
    with pytest.raises(OpsplayError), environment_lock(tmp_path, "dev", "blocked"):
        pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    with environment_lock(tmp_path, "dev", "after the crash"):
        pass


def test_cli_run_exits_locked(opsplay, inventories, tmp_path):
    state = tmp_path / "state"
    with environment_lock(state, "dev", "opsplay maintenance weekly --env dev"):
        result = opsplay("run", "health", "--env", "dev")
    assert result.code == ExitCode.LOCKED
    assert "environment 'dev' is locked by pid" in result.err
    assert "maintenance weekly" in result.err
