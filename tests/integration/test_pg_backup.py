"""backup then restore-test through the CLI on the lab (Mitogen, become_user postgres)."""

from __future__ import annotations

import json
import subprocess

from opsplay.errors import ExitCode


def test_backup_then_restore_test(run_opsplay):
    backup = run_opsplay("run", "backup", "--env", "lab", "--limit", "opsplay-lab-1", "--json")
    assert backup.code == ExitCode.OK, backup.out[-2000:] + backup.err
    listing = subprocess.run(
        [
            "podman",
            "exec",
            "opsplay-lab-1",
            "find",
            "/var/backups/postgresql",
            "-name",
            "postgres_*.dump",
            "-perm",
            "0600",
            "-user",
            "postgres",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listing, "no verified archive of the postgres database with mode 0600"
    tested = run_opsplay(
        "run", "restore-test", "--env", "lab", "--limit", "opsplay-lab-1", "--json"
    )
    assert tested.code == ExitCode.OK, tested.out[-2000:] + tested.err
    assert json.loads(tested.out)["hosts"]["opsplay-lab-1"]["failed"] == 0
