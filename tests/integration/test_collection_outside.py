"""The collection opsplay.ops used from a team's own project: built, installed into an empty
collections path, and its roles run by FQCN from a playbook outside the repository, with plain
ansible-playbook (no opsplay CLI, no opsplay ansible.cfg), against the lab hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, on_host

BIN = Path(sys.executable).parent
HOST = "opsplay-lab-1"

PLAYBOOK = """\
- name: Health of every host, from the installed collection
  hosts: all
  gather_facts: false
  roles:
    - role: opsplay.ops.health

- name: Back up PostgreSQL, from the installed collection
  hosts: db_servers
  gather_facts: false
  roles:
    - role: opsplay.ops.pg_backup
      vars:
        pg_backup_databases: [postgres]
"""


def newest_manifest(host: str) -> dict:
    """The newest manifest of the postgres database's backups on ``host`` ({} when none)."""
    folder = "/var/backups/postgresql/postgres"
    names = on_host(host, f"ls {folder}/ 2>/dev/null | grep '[.]json$' || true")
    if not names:
        return {}
    newest = sorted(names.splitlines())[-1]
    return json.loads(on_host(host, f"cat {folder}/{newest}"))


def test_a_playbook_outside_the_repository_runs_health_and_backup(lab_inventories, tmp_path):
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    (artifact,) = tmp_path.glob("opsplay-ops-*.tar.gz")
    project = tmp_path / "team-project"
    project.mkdir()
    collections = project / "collections"
    install = ["collection", "install", "--offline", "-p", str(collections), str(artifact)]
    subprocess.run(
        [str(BIN / "ansible-galaxy"), *install],
        check=True,
        capture_output=True,
        cwd=project,
    )
    (project / "site.yml").write_text(PLAYBOOK)
    before = newest_manifest(HOST)

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANSIBLE_", "OPSPLAY_")) and k != "PYTHONPATH"
    }
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-vv", "-i", str(lab_inventories / "lab"), "site.yml"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # the roles came from the installed copy, not from the checkout
    installed = collections / "ansible_collections" / "opsplay" / "ops"
    assert f"task path: {installed}/roles/health/tasks/main.yml" in proc.stdout
    assert f"task path: {installed}/roles/pg_backup/tasks/" in proc.stdout
    assert f"task path: {REPO}/" not in proc.stdout
    # the outcome on the host: a new, verified backup of postgres
    after = newest_manifest(HOST)
    assert after["name"] != before.get("name")
    assert after["started"] > before.get("started", "")
    assert after["verified"]["ok"] is True and after["size_bytes"] > 0
