"""A wheel carries the Ansible content, and opsplay finds it there without the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_ships_playbooks_roles_and_config(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("opsplay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "opsplay/_content/ansible.cfg",
        "opsplay/_content/playbooks/health.yml",
        "opsplay/_content/roles/health/tasks/main.yml",
        "opsplay/_content/playbooks/callback_plugins/opsplay_prefork.py",
        # the collection opsplay.ops: its metadata and modules
        "opsplay/_content/galaxy.yml",
        "opsplay/_content/meta/runtime.yml",
        "opsplay/_content/plugins/modules/pg_backup_archive.py",
        "opsplay/lab/Containerfile",
    ):
        assert path in names, path

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    found = subprocess.run(
        [sys.executable, "-c", "from opsplay.content import content_root; print(content_root())"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert found == str(unpacked / "opsplay" / "_content")
