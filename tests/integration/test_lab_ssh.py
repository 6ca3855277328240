"""`opsplay lab up --ssh`: the same lab hosts reached over SSH (the production transport)."""

from __future__ import annotations

import json

import yaml

from opsplay.errors import ExitCode

from .conftest import LAB_HOSTS, start_lab


def test_health_over_ssh(run_opsplay, lab_inventories, tmp_path):
    # the lab key goes to this test's OPSPLAY_STATE_DIR (set by the autouse fixture)
    root = start_lab(tmp_path / "inventories", "--ssh")
    inventory = yaml.safe_load((root / "lab" / "hosts.yml").read_text())
    first = inventory["all"]["hosts"]["opsplay-lab-1"]
    assert first["ansible_connection"] == "ssh" and first["ansible_host"] == "127.0.0.1"

    proc = run_opsplay(
        "run", "health", "--env", "lab", "--json", env={"OPSPLAY_INVENTORY_DIR": str(root)}
    )
    assert proc.code == ExitCode.OK, proc.err
    doc = json.loads(proc.out)
    assert doc["strategy"] == "mitogen_linear"
    assert len(doc["hosts"]) == LAB_HOSTS and all(h["ok"] for h in doc["hosts"].values())
