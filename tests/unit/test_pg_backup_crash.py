"""A backup killed at any step never leaves a manifest without its archive
(plugins/modules/pg_backup_dump.py: dump; plugins/modules/pg_backup_retention.py: retention;
plugins/module_utils/pg_backup_files.py: commit_backup, undo_backup, prune, clean_leftovers).

A manifest is what makes a backup: `opsplay backups`, verification and retention all start from
the manifests. A manifest whose archive is gone is a bad backup that fails every later backup
run until someone removes it by hand, so the manifest gets its final name last and is deleted
first. SIGKILL runs no cleanup code, so the test copies the backup directory after every
rename or unlink (what a kill right after that step would leave) and checks each copy: no
manifest without its archive, and the next backup's clean-up leaves either the whole backup or
nothing of it.
"""

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import GLOBALS
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    BackupError,
    clean_leftovers,
)
from ansible_collections.opsplay.ops.plugins.modules.pg_backup_dump import Dump
from ansible_collections.opsplay.ops.plugins.modules.pg_backup_retention import retention

# What pg_dumpall --globals-only writes, ending with the marker the module checks.
FAKE_DUMPALL = """#!/bin/sh
while [ $# -gt 0 ]; do
  if [ "$1" = --file ]; then out=$2; fi
  shift
done
printf -- '--\\n-- PostgreSQL database cluster dump\\n--\\nCREATE ROLE app;\\n' > "$out"
printf -- '--\\n-- PostgreSQL database cluster dump complete\\n--\\n' >> "$out"
"""


class FakeModule:
    check_mode = False

    def __init__(self, root: Path, bin_dir: Path):
        self.params = {
            "backup_dir": str(root),
            "bin_dir": str(bin_dir),
            "format": "custom",
            "encryption": "none",
            "recipients": [],
            "compress": "",
            "login_host": "",
            "login_unix_socket": "/nonexistent",
            "login_port": 5432,
            "login_user": "postgres",
            "login_password": "",
            "keep_last": 1,
            "keep_daily": 0,
            "keep_weekly": 0,
            "keep_monthly": 0,
            "databases": [],
            "not_good": [],
        }


@pytest.fixture
def backups(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "pg_dumpall"
    tool.write_text(FAKE_DUMPALL)
    tool.chmod(0o755)
    root = tmp_path / "backups"
    root.mkdir()
    return Dump(FakeModule(root, bin_dir))


class Snapshots(list):
    """Copies of the backup directory, one after each rename/unlink/rmtree of the module."""

    active = True


@pytest.fixture
def snapshots(monkeypatch, tmp_path):
    taken = Snapshots()
    root = tmp_path / "backups"
    counter = iter(range(10**6))

    def wrap(real):
        def step(*args, **kwargs):
            result = real(*args, **kwargs)
            if taken.active:
                copy = tmp_path / f"after-step-{next(counter)}"
                shutil.copytree(root, copy)
                taken.append(copy)
            return result

        return step

    # The modules and module_utils call os.rename, os.unlink and shutil.rmtree by attribute.
    monkeypatch.setattr(os, "rename", wrap(os.rename))
    monkeypatch.setattr(os, "unlink", wrap(os.unlink))
    monkeypatch.setattr(shutil, "rmtree", wrap(shutil.rmtree))
    return taken


def manifests_without_archive(root: Path) -> list[str]:
    return [
        str(j.relative_to(root))
        for j in root.glob("*/*.json")
        if not j.with_name(j.name[: -len(".json")]).exists()
    ]


def whole_backups(folder: Path) -> set[str]:
    """Names with all three parts, the archive matching its checksum file."""
    names = set()
    for j in folder.glob("*.json"):
        name = j.name[: -len(".json")]
        archive_path, sums = folder / name, folder / f"{name}.sha256"
        if archive_path.is_file() and sums.is_file():
            digest = hashlib.sha256(archive_path.read_bytes()).hexdigest()
            assert sums.read_text().split()[0] == digest
            names.add(name)
    return names


def after_cleanup(backups, snapshots, copy: Path) -> list[str]:
    """What the next backup's clean-up leaves in the copy's _globals folder."""
    folder = copy / GLOBALS
    if not folder.is_dir():
        return []
    snapshots.active = False
    try:
        clean_leftovers(str(folder), GLOBALS, False)
    finally:
        snapshots.active = True
    return sorted(os.listdir(folder))


def test_a_backup_killed_after_any_step_leaves_the_whole_backup_or_nothing(backups, snapshots):
    folder = Path(backups.root) / GLOBALS
    folder.mkdir()
    made = backups.dump(GLOBALS, str(folder), "15.0")
    name = made["name"]
    whole = [name, f"{name}.json", f"{name}.sha256"]
    assert whole_backups(folder) == {name}
    assert len(snapshots) >= 3  # three renames at least: checksum file, archive, manifest
    for copy in snapshots:
        assert manifests_without_archive(copy) == [], copy.name
        left = after_cleanup(backups, snapshots, copy)
        assert left in ([], whole), (copy.name, left)
    # the last step (the manifest's rename) is the one that makes the backup
    assert after_cleanup(backups, snapshots, snapshots[-1]) == whole
    assert after_cleanup(backups, snapshots, snapshots[-2]) == []


def test_retention_killed_after_any_step_never_leaves_a_manifest_alone(backups, snapshots):
    folder = Path(backups.root) / GLOBALS
    folder.mkdir()
    old = backups.dump(GLOBALS, str(folder), "15.0")["name"]
    new = backups.dump(GLOBALS, str(folder), "15.0")["name"]
    assert old != new and whole_backups(folder) == {old, new}
    del snapshots[:]
    changed, result = retention(backups.p, check_mode=False)
    assert changed
    assert result["deleted"] == [old]
    assert whole_backups(folder) == {new}
    assert snapshots, "retention deleted nothing"
    for copy in snapshots:
        assert manifests_without_archive(copy) == [], copy.name
        assert after_cleanup(backups, snapshots, copy) in (
            [new, f"{new}.json", f"{new}.sha256"],
            sorted([old, f"{old}.json", f"{old}.sha256", new, f"{new}.json", f"{new}.sha256"]),
        ), copy.name


def test_leftovers_of_other_names_are_not_touched(backups, tmp_path):
    folder = Path(backups.root) / "shop"
    folder.mkdir()
    for name in ("notes.txt", "shop_20261130T010000Z.dump.keep", "other_20261130T010000Z.dump"):
        (folder / name).write_text("x")
    (folder / "shop_20261130T010000Z.dump").write_text("orphan")
    (folder / ".shop_20261130T020000Z.dump.tmp").write_text("partial")
    removed = clean_leftovers(str(folder), "shop", False)
    assert removed == [".shop_20261130T020000Z.dump.tmp", "shop_20261130T010000Z.dump"]
    assert sorted(os.listdir(folder)) == [
        "notes.txt",
        "other_20261130T010000Z.dump",
        "shop_20261130T010000Z.dump.keep",
    ]


def test_a_failed_dump_after_the_archive_rename_removes_the_parts(backups, monkeypatch):
    """undo(): the archive already has its final name, the manifest not: nothing stays."""
    folder = Path(backups.root) / GLOBALS
    folder.mkdir()
    real = os.rename

    def rename(src, dst):
        if dst.endswith(".json"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(BackupError):
        backups.dump(GLOBALS, str(folder), "15.0")
    assert os.listdir(folder) == []
