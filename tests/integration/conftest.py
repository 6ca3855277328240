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


def start_lab(root: Path, *options: str) -> Path:
    """Copy the lab env's group_vars into ``root/lab`` and `opsplay lab up` the session's hosts
    there; ``options`` go to `lab up` (e.g. --ssh)."""
    shutil.copytree(
        REPO / "inventories" / "lab", root / "lab", ignore=shutil.ignore_patterns("hosts.yml")
    )
    opsplay = [sys.executable, "-m", "opsplay", "--inventory-dir", str(root)]
    subprocess.run([*opsplay, "lab", "up", "--hosts", str(LAB_HOSTS), *options], check=True)
    return root


@pytest.fixture(scope="session")
def lab_inventories(tmp_path_factory) -> Iterator[Path]:
    """An inventory dir whose `lab` env holds the running lab hosts (started once per session)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run scripts/bootstrap (the lab tests need it)")
    was_up = subprocess.run(
        ["podman", "ps", "-q", "--filter", "label=opsplay.lab=1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    root = start_lab(tmp_path_factory.mktemp("inventories"))
    yield root
    if not was_up:  # leave the machine as we found it
        opsplay = [sys.executable, "-m", "opsplay", "--inventory-dir", str(root)]
        subprocess.run([*opsplay, "lab", "down"], check=True)


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
