"""The one reader of roles/pg_backup's manifests (host side): pg_backup, preflight and status.

Layout under ``backup_dir`` (one directory per backup set, files written by pg_backup_archive)::

    DB/DB_20261124T031500Z.dump          archive (or DB_....dir/, .sql, + .age when encrypted)
    DB/DB_20261124T031500Z.dump.sha256   sha256sum(1) lines, relative to DB/
    DB/DB_20261124T031500Z.dump.json     manifest (written last, deleted first: the commit point)
    _globals/_globals_....sql            pg_dumpall --globals-only (+ .sha256, .json)

The rule, the same for every reader:

- A backup set is a directory under ``backup_dir`` (hidden ones aside); ``_globals`` is one like
  any database's: listed, counted, judged, and reported missing or stale like a database.
- Every ``*.json`` (not hidden) in a set is a backup; ``manifests`` lists them oldest first
  (``started``, then name). A manifest that cannot be read, is not a JSON object, or lacks a valid
  ``started``/``ended`` timestamp is never skipped: it is listed (with ``unreadable`` when it could
  not be read) and is a bad backup (``manifest_problem`` names why).
- A backup is good (``is_good``) when its manifest is sound and records a passed verification
  (``verified.ok is true``). ``verified.check`` says what that verification read (``CHECKS``);
  only a whole read of the archive (``read_whole``) lets a later one trust its checksum alone.
  ``on_disk_problem`` says whether the archive is still the one the manifest describes:
  missing, truncated or grown (its size against ``size_bytes``, a stat per file), and with
  ``checksums`` every file against its ``.sha256`` (reads every archive whole).
- The newest verified backup of a set (``newest_verified``) is its newest good backup whose archive
  passes ``on_disk_problem``: a truncated or deleted archive never counts as a backup, whatever its
  manifest recorded at the last verification.
"""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import (
    TimestampError,
    parse_iso,
)

GLOBALS = "_globals"
TIMESTAMPS = ("started", "ended")

# What a recorded verification (the manifest's "verified": ok, at, problem, check) read.
WHOLE = "whole"  # the archive on disk, whole: pg_restore of all of it (or the globals' end
# marker), an encrypted one decrypted with the private key on the way
STRUCTURE = "structure"  # an encrypted archive without the key: checksum and age structure only
CHECKSUM = "checksum"  # the checksum only (of an archive read whole before, or one that failed it)
WRITTEN = "written"  # as written (pg_backup_dump): what went into the file, read by pg_restore
# on its way (encrypted: the plaintext on its way into age; age's output is not decrypted)
CHECKS = (WHOLE, STRUCTURE, CHECKSUM, WRITTEN)


def backup_sets(root: str) -> list:
    """The backup sets (database names and ``_globals``) with a directory under root, sorted.

    [] when root does not exist; OSError when it cannot be listed."""
    if not os.path.isdir(root):
        return []
    return sorted(
        d
        for d in os.listdir(root)
        if not d.startswith(".") and os.path.isdir(os.path.join(root, d))
    )


def read_manifest(path: str, backup_set: str) -> dict:
    """The manifest at path as pg_backup_archive uses it (``path`` is its archive's path,
    ``manifest_path`` its own); an unreadable one as ``{name, database, unreadable}``."""
    entry = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        manifest = {"name": entry[:-5], "database": backup_set, "unreadable": str(exc)}
    manifest["manifest_path"] = path
    manifest["path"] = os.path.join(os.path.dirname(path), str(manifest.get("name", entry[:-5])))
    manifest.setdefault("name", entry[:-5])
    return manifest


def manifests(root: str, databases=None) -> list:
    """Every backup under root, oldest first; with ``databases`` only theirs (and ``_globals``).

    OSError when root or a set's directory cannot be listed (the caller names it)."""
    found = []
    for sub in backup_sets(root):
        if databases and sub not in databases and sub != GLOBALS:
            continue
        folder = os.path.join(root, sub)
        for entry in sorted(os.listdir(folder)):
            if entry.startswith(".") or not entry.endswith(".json"):
                continue
            found.append(read_manifest(os.path.join(folder, entry), sub))
    found.sort(key=lambda m: (str(m.get("started", "")), str(m["name"])))
    return found


def backup_set(manifest: dict) -> str:
    """The set (directory name) a listed manifest belongs to."""
    return os.path.basename(os.path.dirname(manifest["manifest_path"]))


def manifest_problem(manifest: dict) -> str:
    """'' when the manifest was read and has valid timestamps, else why it makes a bad backup."""
    if "unreadable" in manifest:
        return "manifest unreadable (%s)" % manifest["unreadable"]
    for field in TIMESTAMPS:
        if field not in manifest:
            return "manifest incomplete: no %s" % field
        try:
            parse_iso(manifest[field])
        except TimestampError as exc:
            return "manifest incomplete: %s: %s" % (field, exc)
    return ""


def is_good(manifest: dict) -> bool:
    """Whether the manifest is sound and records a passed verification."""
    verified = manifest.get("verified")
    return (
        not manifest_problem(manifest) and isinstance(verified, dict) and verified.get("ok") is True
    )


def read_whole(manifest: dict) -> bool:
    """Whether the manifest records a passed verification that read these very bytes whole, so
    that a matching checksum proves the archive still reads (the checksum shortcut).

    A passed WHOLE check does. So does, for an unencrypted archive, a passed verification as
    written or with no check recorded (pg_backup_dump's, whose pg_restore read the very bytes that
    went into the file, or an older opsplay's whole read). For an encrypted archive nothing else
    does: no check recorded may be an older opsplay's keyless structure check, and as written
    only the plaintext was read, never age's output; a STRUCTURE check never decrypted anything."""
    verified = manifest.get("verified")
    if not isinstance(verified, dict) or verified.get("ok") is not True:
        return False
    check = verified.get("check")
    if check == WHOLE:
        return True
    return check in (None, WRITTEN) and manifest.get("encryption", "none") == "none"


def verification_news(manifest: dict, problem: str, check: str) -> bool:
    """Whether a verification (problem: '' when it passed; check: what it read) is to be recorded
    in place of the manifest's: a failure that differs from the recorded one, a pass over a
    failure, and a pass over a pass only when it is the first whole read (a pass that read less
    than the recorded one never replaces it: the checksum still matches the bytes that one read)."""
    recorded = manifest.get("verified")
    if not isinstance(recorded, dict):
        return True
    if problem:
        return (recorded.get("ok"), recorded.get("problem", ""), recorded.get("check")) != (
            False,
            problem,
            check,
        )
    if recorded.get("ok") is True:
        return check == WHOLE and not read_whole(manifest)
    return True


def whole_read_failure(manifest: dict) -> str:
    """The problem a recorded whole read found ('' when none): a keyless check of an archive that
    still matches its checksum cannot clear it (the same bytes would fail the whole read again)."""
    verified = manifest.get("verified")
    if (
        isinstance(verified, dict)
        and verified.get("ok") is False
        and verified.get("check") == WHOLE
    ):
        return str(verified.get("problem") or "failed its whole read")
    return ""


def archive_files(path: str) -> list:
    """Files of an archive (one file, or every file of a directory-format archive), sorted."""
    if os.path.isdir(path):
        return sorted(os.path.join(path, f) for f in os.listdir(path))
    return [path]


def archive_size(path: str) -> int:
    return sum(os.path.getsize(p) for p in archive_files(path))


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_problem(path: str, read: dict | None = None) -> str:
    """'' when every file of the archive at ``path`` matches its ``.sha256``, else the problem.

    ``read``: {file name relative to the archive's folder: sha256 hex} of files already read
    whole by the caller (the restore test's pg_restore feed), not read again."""
    folder = os.path.dirname(path)
    try:
        with open(path + ".sha256", encoding="utf-8") as handle:
            expected = [line.split(None, 1) for line in handle if line.strip()]
    except OSError as exc:
        return "checksum file unreadable (%s)" % (exc.strerror or exc)
    listed = sorted(rel.strip() for _, rel in expected)
    actual = sorted(os.path.relpath(p, folder) for p in archive_files(path))
    if listed != actual:
        return "archive files differ from the checksum file"
    read = read or {}
    for digest, rel in expected:
        rel = rel.strip()
        got = read[rel] if rel in read else sha256_file(os.path.join(folder, rel))
        if got != digest:
            return "checksum mismatch (%s)" % rel
    return ""


def on_disk_problem(manifest: dict, checksums: bool = False) -> str:
    """'' when the archive on disk is still the one its manifest describes, else why not.

    What a listing can afford every time: the archive exists and its size is the manifest's
    size_bytes (a stat per file), so a truncated, missing or replaced archive is never listed
    as good on the strength of its last recorded verification. ``checksums`` also compares
    every file with its .sha256, which reads every archive whole (a byte changed in place
    keeps the size). Nothing is written: the manifest keeps its recorded verification.
    """
    if "unreadable" in manifest:
        return "manifest unreadable (%s)" % manifest["unreadable"]
    path = manifest["path"]
    if not os.path.exists(path):
        return "archive missing"
    try:
        size = archive_size(path)
    except OSError as exc:
        return "archive unreadable (%s)" % (exc.strerror or exc)
    recorded = manifest.get("size_bytes")
    if isinstance(recorded, int) and size != recorded:
        if size < recorded:
            return "truncated: %d of %d bytes" % (size, recorded)
        return "size changed: %d bytes, %d recorded" % (size, recorded)
    return checksum_problem(path) if checksums else ""


def newest_verified(listed: list, checksums: bool = False) -> dict:
    """{set: manifest} of each set's newest good backup whose archive is still whole.

    ``listed`` is what ``manifests`` returned (oldest first); a set without one is absent."""
    newest = {}
    for manifest in listed:
        if is_good(manifest) and not on_disk_problem(manifest, checksums):
            newest[backup_set(manifest)] = manifest
    return newest


def last_restore_test(listed: list) -> dict:
    """{set: {"at", "ok", "backup"}}: each set's newest recorded restore test (a test whose time
    is not a valid timestamp is ignored: it says nothing about when the set was last tested)."""
    tests = {}
    for manifest in listed:
        test = manifest.get("restore_test")
        if not isinstance(test, dict):
            continue
        try:
            at = parse_iso(test.get("at"))
        except TimestampError:
            continue
        name = backup_set(manifest)
        if name not in tests or at >= tests[name]["at_time"]:
            tests[name] = {
                "at": test["at"],
                "at_time": at,
                "ok": bool(test.get("ok")),
                "backup": manifest["name"],
            }
    return tests
