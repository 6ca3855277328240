"""opsplay's Ansible content is the collection opsplay.ops: it builds, installs into a clean
collections path, and Ansible finds its modules there by FQCN (the lab test runs its roles:
tests/integration/test_collection_outside.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

import opsplay
from opsplay import content

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def galaxy(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        [str(BIN / "ansible-galaxy"), *args], capture_output=True, text=True, check=True, cwd=cwd
    ).stdout


def modules_found(collections: Path) -> dict[str, str]:
    listed = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "module", "--list", "--json", "opsplay.ops"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)},
        cwd="/",  # no ansible.cfg of the checkout
    ).stdout
    return json.loads(listed)


def test_galaxy_yml_version_is_the_package_version():
    assert yaml.safe_load((REPO / "galaxy.yml").read_text())["version"] == opsplay.__version__


def test_the_built_collection_holds_the_content_and_nothing_else(tmp_path):
    galaxy("collection", "build", "--output-path", str(tmp_path))
    (artifact,) = tmp_path.glob("opsplay-ops-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["version"] == opsplay.__version__
    modules = sorted(p.name for p in (REPO / "plugins" / "modules").glob("*.py"))
    assert modules and all(f"plugins/modules/{m}" in names for m in modules)
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    assert all(f"roles/{r}/tasks/main.yml" in names for r in roles)
    assert "playbooks/health.yml" in names and "meta/runtime.yml" in names
    top = {n.split("/")[0] for n in names}
    for private in ("src", "tests", "molecule", "inventories", "benchmarks", "collections"):
        assert private not in top, private
    assert not [n for n in names if "__pycache__" in n]

    # installs into an empty collections path (no Galaxy: the artifact is local)
    installed = tmp_path / "collections"
    # (from outside the checkout, whose ansible.cfg already has opsplay.ops on its path)
    galaxy("collection", "install", "--offline", "-p", str(installed), str(artifact), cwd=tmp_path)
    found = modules_found(installed)
    assert {f"opsplay.ops.{m[:-3]}" for m in modules} <= set(found), found


def test_the_cli_links_the_collection_into_its_state_dir(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = content.collections_path(state)
    link = path / "ansible_collections" / "opsplay" / "ops"
    assert link.is_symlink() and link.resolve() == content.content_root().resolve()
    assert content.collections_path(state) == path  # a second call keeps the link
    # a link to another content root (an older install) is replaced
    link.unlink()
    link.symlink_to(tmp_path)
    content.collections_path(state)
    assert link.resolve() == content.content_root().resolve()
    assert "opsplay.ops.pg_backup_archive" in modules_found(path)


def test_the_checkout_links_itself_for_ansible_playbook_and_molecule():
    link = REPO / "collections" / "ansible_collections" / "opsplay" / "ops"
    assert link.is_symlink() and os.readlink(link) == "../../.."
