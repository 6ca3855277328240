"""The repository works as an AWX project: its execution environment builds a context with every
collection the roles and playbooks use."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FQCN = re.compile(r"^\s*-?\s*([a-z_]+\.[a-z_]+)\.[a-z_0-9]+:", re.MULTILINE)


def used_collections() -> set[str]:
    found = set()
    for path in [*REPO.glob("roles/**/*.yml"), *REPO.glob("playbooks/*.yml")]:
        found |= set(FQCN.findall(path.read_text(encoding="utf-8")))
    # opsplay.ops is the project itself: AWX reads the project's ansible.cfg collections_path
    # (collections/ links the checkout as the collection), so neither the requirements nor the
    # execution environment carry it.
    return {c for c in found if c not in ("ansible.builtin", "opsplay.ops")}


def test_requirements_declare_every_collection_used():
    declared = {
        c["name"]
        for c in yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())[
            "collections"
        ]
    }
    used = used_collections()
    assert "community.postgresql" in used  # the scan sees real module calls
    assert used <= declared, used - declared


def test_requirements_pin_the_versions_the_cli_runs():
    """collections/requirements.yml (AWX, the execution environment) names each collection at
    the version the pinned ansible package installed for the CLI: same modules on every path."""
    import ansible_collections

    pinned = yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())
    for entry in pinned["collections"]:
        namespace, name = entry["name"].split(".")
        (manifest,) = [
            Path(root) / namespace / name / "MANIFEST.json"
            for root in ansible_collections.__path__
            if (Path(root) / namespace / name / "MANIFEST.json").is_file()
        ]
        installed = json.loads(manifest.read_text())["collection_info"]["version"]
        assert str(entry.get("version")) == installed, (entry["name"], installed)


def test_ansible_builder_creates_the_context(tmp_path):
    builder = Path(sys.executable).parent / "ansible-builder"
    subprocess.run(
        [
            str(builder),
            "create",
            "-f",
            str(REPO / "execution-environment.yml"),
            "-c",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    containerfile = (tmp_path / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    copied = yaml.safe_load((tmp_path / "_build" / "requirements.yml").read_text())
    assert {c["name"] for c in copied["collections"]} >= used_collections()
