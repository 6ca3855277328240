"""Files of opsplay's PostgreSQL backups, shared by the pg_backup modules (the database host's and
the backup host's): one-line errors, the three parts of a backup, writing and removing them.

The manifest is the commit point of a backup: it gets its final name last and is deleted first,
so a manifest always has its whole archive beside it (tests/unit/test_pg_backup_crash.py). No
PostgreSQL and no age here: the backup host's module (pg_backup_offsite) imports this.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil

from ansible_collections.opsplay.ops.plugins.module_utils import backup_manifest
from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import (
    archive_files,
    sha256_file,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_gfs import gfs

EXTENSIONS = {"custom": ".dump", "directory": ".dir", "sql": ".sql"}


class BackupError(Exception):
    """A failure reported to the user as one line."""


def describe_os_error(exc, what):
    if exc.errno == errno.ENOSPC:
        return "disk full (%s) while writing %s" % (exc.strerror, what)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: %s" % (exc.filename or what)
    return "%s: %s" % (what, exc.strerror or exc)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checksum_lines(archive, final_name):
    """sha256sum(1) lines for the archive, named as they will be once renamed to final_name."""
    lines = []
    for path in archive_files(archive):
        rel = final_name if path == archive else os.path.join(final_name, os.path.basename(path))
        lines.append("%s  %s\n" % (sha256_file(path), rel))
    return "".join(lines)


def write_file(path, text):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def prepare_dir(path):
    """Make path (0700) and check that files can be written in it."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        probe = os.path.join(path, ".write-test.tmp")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise BackupError(describe_os_error(exc, path)) from exc


def manifests(root, databases=None):
    """Every backup (manifest + archive) under root, oldest first (module_utils/backup_manifest)."""
    try:
        return backup_manifest.manifests(root, databases)
    except OSError as exc:
        raise BackupError(describe_os_error(exc, exc.filename or root)) from exc


def save_manifest(manifest):
    """Rewrite a manifest in place (through a temporary file and a rename)."""
    data = {k: v for k, v in manifest.items() if k not in ("manifest_path", "path")}
    tmp = os.path.join(
        os.path.dirname(manifest["manifest_path"]),
        "." + os.path.basename(manifest["manifest_path"]) + ".tmp",
    )
    try:
        write_file(tmp, json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.rename(tmp, manifest["manifest_path"])
    except OSError as exc:
        remove(tmp)
        raise BackupError(describe_os_error(exc, manifest["manifest_path"])) from exc


def prune(delete, check_mode):
    """Delete the backups (manifests) in delete; their names."""
    if delete and not check_mode:
        for m in delete:
            # manifest first: a run killed in between leaves parts without a manifest
            # (removed by the next backup), never a manifest without its archive
            remove(m["manifest_path"])
            remove(m["path"] + ".sha256")
            remove(m["path"])
    return [m["name"] for m in delete]


def newest_others(manifests, written, newest):
    """The names of each database's ``newest`` newest backups (manifests: oldest first) that are
    not in written (the backups this run wrote and verified already): what a run re-verifies."""
    names = {}
    for manifest in manifests:
        if manifest["name"] not in written:
            names.setdefault(manifest.get("database"), []).append(manifest["name"])
    return [name for kept in names.values() for name in kept[max(0, len(kept) - newest) :]]


KEEP = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


def retention(params, check_mode):
    """(changed, result) of the GFS retention of params["backup_dir"] (databases, keep_*,
    not_good: names not to count as good); bad backups are never deleted."""
    keep = {k: params[k] for k in KEEP}
    delete, kept = gfs(
        manifests(params["backup_dir"], params["databases"]), keep, set(params["not_good"])
    )
    names = prune(delete, check_mode)
    return bool(names), {
        "deleted": names,
        "kept": kept,
        "msg": ("would delete: " if check_mode else "deleted: ") + (", ".join(names) or "nothing"),
    }


def clean_leftovers(folder, database, check_mode):
    """What an interrupted earlier run left in ``folder``: temporary files, and an archive
    or checksum file of this database's naming whose manifest never got its final name
    (the manifest is written last and deleted first, so such parts are never a backup)."""
    parts = re.compile(
        r"^%s_\d{8}T\d{6}Z(%s)(\.age)?(\.sha256)?$"
        % (re.escape(database), "|".join(re.escape(e) for e in EXTENSIONS.values()))
    )
    entries = os.listdir(folder)
    removed = []
    for entry in sorted(entries):
        if entry.startswith(".") and entry.endswith(".tmp"):
            removed.append(entry)
        elif parts.match(entry):
            archive = entry[: -len(".sha256")] if entry.endswith(".sha256") else entry
            if archive + ".json" not in entries:
                removed.append(entry)
    if not check_mode:
        for entry in removed:
            remove(os.path.join(folder, entry))
    return removed


def commit_backup(tmp, final, sums, manifest):
    """Write the checksum file and the manifest of the archive at tmp["archive"], then give the
    parts their final names (tmp: archive, sha256 and json temporary paths)."""
    write_file(tmp["sha256"], sums)
    write_file(tmp["json"], json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for path in archive_files(tmp["archive"]):
        fsync_path(path)
    # The manifest gets its final name last (as an offsite copy's does): a manifest
    # always has its whole archive beside it. A run killed before that leaves only
    # parts without a manifest, which the next backup removes (clean_leftovers).
    folder = os.path.dirname(final)
    os.rename(tmp["sha256"], final + ".sha256")
    os.rename(tmp["archive"], final)
    fsync_path(folder)
    os.rename(tmp["json"], final + ".json")
    fsync_path(folder)


def undo_backup(tmp, final):
    """Remove what a failed dump wrote: its temporary files and, without a manifest under its
    final name, the parts already renamed (no manifest: not a backup, no part stays)."""
    for path in tmp.values():
        remove(path)
    if not os.path.exists(final + ".json"):
        remove(final + ".sha256")
        remove(final)
