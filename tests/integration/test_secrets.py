"""Canary secrets (a vaulted variable, a DB password, an environment variable) never reach the
state directory, the artifacts or the output, on success and failure paths, even with -vvv."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opsplay.errors import ExitCode

VAULT_CANARY = "canary-vault-7f3a9c"
DB_CANARY = "canary-db-41d2be"
ENV_CANARY = "canary-env-95ce07"
VAULT_PASSWORD = "canary-vaultpass-0b8e11"
HOST = "opsplay-lab-1"


def psql(sql: str) -> None:
    subprocess.run(
        ["podman", "exec", HOST, "runuser", "-u", "postgres", "--", "psql", "-qc", sql], check=True
    )


@pytest.fixture
def secret_inventory(lab_inventories, tmp_path):
    root = tmp_path / "inventories"
    shutil.copytree(lab_inventories / "lab", root / "lab")
    vault_file = tmp_path / "vault-pass"
    vault_file.write_text(VAULT_PASSWORD + "\n")
    vault_file.chmod(0o600)
    encrypted = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt_string",
            "--vault-password-file",
            str(vault_file),
            VAULT_CANARY,
            "--name",
            "health_postgres_password",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (root / "lab" / "host_vars").mkdir()
    (root / "lab" / "host_vars" / f"{HOST}.yml").write_text("---\n" + encrypted)
    psql(f"ALTER USER postgres PASSWORD '{VAULT_CANARY}'")
    yield root, vault_file
    psql("ALTER USER postgres PASSWORD NULL")


def test_canaries_never_stored_or_printed(run_opsplay, secret_inventory):
    root, vault_file = secret_inventory
    env = {
        "OPSPLAY_INVENTORY_DIR": str(root),
        "PGPASSWORD": ENV_CANARY,
        "OPSPLAY_VAULT_PASSWORD_FILE": str(vault_file),
    }
    common = ("run", "health", "--env", "lab", "--limit", HOST, "-vvv")

    ok = run_opsplay(*common, env=env)
    assert ok.code == ExitCode.OK, ok.out[-3000:] + ok.err  # the vaulted password logs in

    failed = run_opsplay(*common, "-e", f"health_postgres_password={DB_CANARY}", env=env)
    assert failed.code == ExitCode.HOSTS_FAILED, failed.err  # wrong password: login refused

    as_json = run_opsplay(
        *common[:-1], "--json", "-e", f"health_postgres_password={DB_CANARY}", env=env
    )
    assert as_json.code == ExitCode.HOSTS_FAILED

    canaries = (VAULT_CANARY, DB_CANARY, ENV_CANARY, VAULT_PASSWORD)
    outputs = ok.out + ok.err + failed.out + failed.err + as_json.out + as_json.err
    assert "PLAY RECAP" in outputs  # -vvv really streamed Ansible's output
    for canary in canaries:
        assert canary not in outputs, canary

    files = [p for p in run_opsplay.state.rglob("*") if p.is_file()]
    assert any(p.name == "stdout" for p in files) and any("job_events" in str(p) for p in files)
    for path in files:
        data = path.read_bytes()
        for canary in canaries:
            assert canary.encode() not in data, (canary, path)
    assert_private(run_opsplay.state)
    run_ids = [p.name for p in (run_opsplay.state / "runs").iterdir()]
    assert len(run_ids) == 3
    for run_id in run_ids:  # per-run inputs removed (named after the run: other runs may go on)
        assert not list(Path("/dev/shm").glob(f"opsplay-{run_id}-*")), run_id


def assert_private(state: Path) -> None:
    """Every directory of the state 0700 (the state directory itself and the runs/, locks/,
    collections/ parents too), every file 0600; the collection's link is a symlink."""
    import stat

    seen = {"dirs": 0, "files": 0}
    for path in [state, *state.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if stat.S_ISDIR(mode):
            seen["dirs"] += 1
            assert stat.S_IMODE(mode) == 0o700, (oct(stat.S_IMODE(mode)), path)
        else:
            seen["files"] += 1
            assert stat.S_IMODE(mode) == 0o600, (oct(stat.S_IMODE(mode)), path)
    assert seen["dirs"] > 10 and seen["files"] > 10, seen
