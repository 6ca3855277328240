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


def on_host(host: str, script: str) -> str:
    """Run the shell ``script`` on a lab host; its stdout, stripped (fails the test on error)."""
    proc = subprocess.run(
        ["podman", "exec", host, "sh", "-c", script], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def version(host: str, package: str) -> str:
    """The installed version of ``package`` on a lab host."""
    return on_host(host, f"dpkg-query -W -f '${{Version}}' {package}")


@pytest.fixture
def run_opsplay(lab_inventories, tmp_path):
    """Run `opsplay ARGS` as a real process against the lab; state in a fresh dir.

    ``run_opsplay.start(ARGS)`` starts it without waiting (a ``subprocess.Popen`` with text
    pipes, in a process group of its own as cron or systemd would start it), for tests that
    act while it runs: interrupt it, kill it, stop a service under it.
    """
    state = tmp_path / "state"
    metrics = tmp_path / "metrics"  # opsplay status's textfile, outside the private state

    def environ(env: dict[str, str] | None = None) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("OPSPLAY_")}
        environ.update(
            {
                "OPSPLAY_INVENTORY_DIR": str(lab_inventories),
                "OPSPLAY_STATE_DIR": str(state),
                "OPSPLAY_METRICS_DIR": str(metrics),
            }
        )
        environ.update(env or {})
        return environ

    def run(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> Proc:
        proc = subprocess.run(
            [sys.executable, "-m", "opsplay", *args],
            capture_output=True,
            text=True,
            env=environ(env),
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Proc(proc.returncode, proc.stdout, proc.stderr)

    def start(*args: str, new_session: bool = True) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "opsplay", *args],
            env=environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=new_session,
        )

    run.state = state  # type: ignore[attr-defined]
    run.metrics = metrics  # type: ignore[attr-defined]
    run.start = start  # type: ignore[attr-defined]
    yield run
    drop_leases()


def drop_leases() -> None:
    """Remove the run leases a test left on the lab hosts (a killed run's lease lasts its TTL,
    6 h, by design): each test starts with free hosts, as its own state directory expects.
    Tests that promise "no lease left" assert it themselves before this runs."""
    hosts = subprocess.run(
        ["podman", "ps", "-q", "--filter", "label=opsplay.lab=1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for host in hosts:
        subprocess.run(
            ["podman", "exec", host, "rm", "-f", "/var/lib/opsplay/lease.json"], check=False
        )
