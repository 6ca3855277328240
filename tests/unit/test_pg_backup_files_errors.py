"""plugins/module_utils/pg_backup_files.py's one-line errors and in-place rewrites: OS errors
worded for the user, a backup directory that cannot be made or written, a manifest rewritten
through a temporary file that never stays behind. Commit/undo/prune order under a kill:
test_pg_backup_crash.py."""

from __future__ import annotations

import errno
import json
import os

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import pg_backup_files as files
from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import manifests

from .pg_backup_fakes import write_backup


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"),
         "disk full (No space left on device) while writing /b"),
        (OSError(errno.EACCES, "Permission denied", "/b/shop"), "permission denied: /b/shop"),
        (OSError(errno.EPERM, "Operation not permitted"), "permission denied: /b"),
        (OSError(errno.EROFS, "Read-only file system"), "/b: Read-only file system"),
        (OSError("odd"), "/b: odd"),
    ],
)  # fmt: skip
def test_os_errors_are_one_line(exc, message):
    assert files.describe_os_error(exc, "/b") == message


def test_prepare_dir_makes_a_private_writable_directory(tmp_path):
    folder = tmp_path / "a" / "b"
    old = os.umask(0)
    try:
        files.prepare_dir(str(folder))
    finally:
        os.umask(old)
    assert folder.is_dir()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert os.listdir(folder) == []  # the write test leaves nothing


def test_prepare_dir_fails_in_one_line_where_nothing_can_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(files.BackupError) as failed:
        files.prepare_dir(str(blocker / "shop"))
    assert str(failed.value) == f"{blocker / 'shop'}: Not a directory"


def test_manifests_of_an_unlistable_directory_fail_in_one_line(tmp_path, monkeypatch):
    write_backup(tmp_path, "shop", "20261130T020000Z", b"PGDMP END")

    def listdir(path="."):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(os.path, "isdir", lambda path: True)
    with pytest.raises(files.BackupError) as failed:
        files.manifests(str(tmp_path))
    assert str(failed.value) == f"permission denied: {tmp_path}"


def test_save_manifest_rewrites_it_whole_without_its_listing_fields(tmp_path):
    archive = write_backup(tmp_path, "shop", "20261130T020000Z", b"PGDMP END")
    (manifest,) = manifests(str(tmp_path))
    manifest["restore_test"] = {"ok": True, "at": "2026-11-30T03:00:00Z"}
    files.save_manifest(manifest)
    saved = json.loads(archive.with_name(archive.name + ".json").read_text())
    assert saved["restore_test"] == {"ok": True, "at": "2026-11-30T03:00:00Z"}
    assert "path" not in saved and "manifest_path" not in saved
    assert sorted(os.listdir(archive.parent)) == sorted(
        [archive.name, archive.name + ".json", archive.name + ".sha256"]
    )


def test_a_manifest_that_cannot_be_rewritten_is_left_as_it_was(tmp_path, monkeypatch):
    archive = write_backup(tmp_path, "shop", "20261130T020000Z", b"PGDMP END")
    before = archive.with_name(archive.name + ".json").read_text()
    (manifest,) = manifests(str(tmp_path))
    manifest["restore_test"] = {"ok": False}

    def rename(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(files.BackupError) as failed:
        files.save_manifest(manifest)
    assert str(failed.value) == (
        f"disk full (No space left on device) while writing {manifest['manifest_path']}"
    )
    assert archive.with_name(archive.name + ".json").read_text() == before
    assert not any(n.endswith(".tmp") for n in os.listdir(archive.parent))
