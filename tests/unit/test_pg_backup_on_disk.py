"""What `opsplay backups` checks on disk before it lists a backup as good
(plugins/module_utils/backup_manifest.py, on_disk_problem, as plugins/modules/pg_backup_archive.py
uses it for action=list)."""

import hashlib
import importlib.util
import json
from pathlib import Path

MODULE = Path(__file__).parents[2] / "plugins" / "modules" / "pg_backup_archive.py"
spec = importlib.util.spec_from_file_location("pg_backup_archive", MODULE)
archive = importlib.util.module_from_spec(spec)
spec.loader.exec_module(archive)

NAME = "shop_20261130T010000Z.dump"


def backup(tmp_path, data=b"PGDMP" + bytes(range(256)) * 8):
    """An archive, its .sha256 and the manifest as the module reads it."""
    folder = tmp_path / "shop"
    folder.mkdir()
    path = folder / NAME
    path.write_bytes(data)
    (folder / f"{NAME}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {NAME}\n")
    manifest = {"name": NAME, "database": "shop", "size_bytes": len(data)}
    (folder / f"{NAME}.json").write_text(json.dumps(manifest))
    return dict(manifest, path=str(path), manifest_path=str(folder / f"{NAME}.json"))


def test_a_whole_archive_is_ok_by_size_and_by_checksum(tmp_path):
    manifest = backup(tmp_path)
    assert archive.on_disk_problem(manifest) == ""
    assert archive.on_disk_problem(manifest, checksums=True) == ""


def test_a_truncated_archive_names_both_sizes(tmp_path):
    manifest = backup(tmp_path)
    with open(manifest["path"], "r+b") as handle:
        handle.truncate(1234)
    assert archive.on_disk_problem(manifest) == "truncated: 1234 of 2053 bytes"


def test_a_grown_archive_is_not_ok_either(tmp_path):
    manifest = backup(tmp_path)
    with open(manifest["path"], "ab") as handle:
        handle.write(b"x")
    assert archive.on_disk_problem(manifest) == "size changed: 2054 bytes, 2053 recorded"


def test_a_missing_archive(tmp_path):
    manifest = backup(tmp_path)
    Path(manifest["path"]).unlink()
    assert archive.on_disk_problem(manifest) == "archive missing"


def test_a_byte_changed_in_place_needs_the_checksum(tmp_path):
    manifest = backup(tmp_path)
    with open(manifest["path"], "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert archive.on_disk_problem(manifest) == ""  # same size: the cheap check cannot see it
    assert archive.on_disk_problem(manifest, checksums=True) == f"checksum mismatch ({NAME})"


def test_an_unreadable_manifest_is_named(tmp_path):
    manifest = {"name": NAME, "path": str(tmp_path / NAME), "unreadable": "Expecting value"}
    assert archive.on_disk_problem(manifest) == "manifest unreadable (Expecting value)"


def test_a_directory_archive_counts_all_its_files(tmp_path):
    folder = tmp_path / "shop"
    (folder / "shop.dir").mkdir(parents=True)
    (folder / "shop.dir" / "toc.dat").write_bytes(b"a" * 10)
    (folder / "shop.dir" / "3001.dat.gz").write_bytes(b"b" * 20)
    manifest = {"name": "shop.dir", "path": str(folder / "shop.dir"), "size_bytes": 30}
    assert archive.on_disk_problem(manifest) == ""
    (folder / "shop.dir" / "3001.dat.gz").write_bytes(b"b" * 5)
    assert archive.on_disk_problem(manifest) == "truncated: 15 of 30 bytes"
