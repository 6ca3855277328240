"""Shared fixtures: an isolated inventory dir and state dir, and a way to run the CLI in-process."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsplay.cli import main

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("OPSPLAY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OPSPLAY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def inventories(tmp_path, monkeypatch) -> Path:
    """A copy of the repository's example inventories, used as --inventory-dir."""
    root = tmp_path / "inventories"
    shutil.copytree(
        REPO / "inventories", root, ignore=shutil.ignore_patterns("hosts.yml"), dirs_exist_ok=True
    )
    for env in ("dev", "staging", "prod"):
        shutil.copy(REPO / "inventories" / env / "hosts.yml", root / env / "hosts.yml")
    monkeypatch.setenv("OPSPLAY_INVENTORY_DIR", str(root))
    return root


@pytest.fixture
def opsplay(capsys):
    """Run the CLI in-process; return its exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capsys.readouterr()
        return Result(int(exited.value.code or 0), captured.out, captured.err)

    return run
