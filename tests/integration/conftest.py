"""Integration fixtures: real lab containers (podman + systemd) and opsplay run as a process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

LAB_HOSTS = int(os.environ.get("OPSPLAY_TEST_LAB_HOSTS", "2"))


@dataclass
class Proc:
    code: int
    out: str
    err: str


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab_inventories(tmp_path_factory) -> Iterator[Path]:
    """An inventory dir whose `lab` env holds the running lab hosts (started once per session)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run scripts/bootstrap (the lab tests need it)")
    root = tmp_path_factory.mktemp("inventories")
    shutil.copytree(
        REPO / "inventories" / "lab", root / "lab", ignore=shutil.ignore_patterns("hosts.yml")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "opsplay",
            "--inventory-dir",
            str(root),
            "lab",
            "up",
            "--hosts",
            str(LAB_HOSTS),
        ],
        check=True,
    )
    return root


@pytest.fixture
def run_opsplay(lab_inventories, tmp_path):
    """Run `opsplay ARGS` as a real process against the lab; state in a fresh dir."""
    state = tmp_path / "state"

    def run(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> Proc:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("OPSPLAY_")}
        environ.update(
            {"OPSPLAY_INVENTORY_DIR": str(lab_inventories), "OPSPLAY_STATE_DIR": str(state)}
        )
        environ.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "opsplay", *args],
            capture_output=True,
            text=True,
            env=environ,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Proc(proc.returncode, proc.stdout, proc.stderr)

    run.state = state  # type: ignore[attr-defined]
    return run
