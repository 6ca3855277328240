#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module of the pg_backup role that runs ON THE BACKUP HOST (backup_dir = DIR/<db host>):
which verified backups of a database host it lacks (plan), and checking, promoting and pruning
the copies that arrived (receive). Files and retention only: no PostgreSQL, no age here.

A copy gets its final names archive first, manifest last (as a new backup does), so a manifest on
the backup host always has its whole, checked archive beside it.
"""

from __future__ import annotations

import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import archive_files
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    BackupError,
    checksum_lines,
    describe_os_error,
    fsync_path,
    manifests,
    prune,
    remove,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_gfs import gfs

KEEP = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


def copy_files(copy):
    """Paths, relative to backup_dir, of the three parts of a backup: archive, checksum
    file, manifest (the order they get their final names in)."""
    rel = os.path.join(copy["database"], copy["name"])
    return [rel, rel + ".sha256", rel + ".json"]


def check_copies(copies):
    for copy in copies:
        for key in ("name", "database", "sha256", "started"):
            if not copy.get(key):
                raise BackupError("offsite: backup entry without %s: %r" % (key, copy))
        if "/" in copy["name"] or "/" in copy["database"] or copy["database"].startswith("."):
            raise BackupError("offsite: unusable backup name %s" % copy["name"])


def plan(held, copies, keep):
    """Pure: which copies to send, given the manifests held (a list) and the retention."""
    held = {m["name"]: m for m in held}
    wanted = [c for c in copies if c["name"] not in held]
    # Counted as the verified backups they are (the role's entries carry no "ended": without one
    # backup_manifest.is_good would not count them, and the plan would send copies that the
    # retention prunes on arrival while missing the held ones it deletes).
    pending = [
        dict(c, verified={"ok": True}, ended=c.get("ended") or c["started"], pending=True)
        for c in wanted
    ]
    pending = [dict(c, path="", manifest_path="") for c in pending]
    delete, _ = gfs(list(held.values()) + pending, keep)
    gone = {m["name"] for m in delete}
    send = [c for c in wanted if c["name"] not in gone]
    return {
        "held": sorted(held),
        "send": send,
        "send_bytes": sum(int(c.get("size_bytes") or 0) for c in send),
        "files": [f for c in send for f in copy_files(c)],
        "would_delete": sorted(m["name"] for m in delete if not m.get("pending")),
        "msg": "%d held, %d to copy" % (len(held), len(send)),
    }


def copy_problem(copy, sources):
    """'' when the incoming archive, checksum file and manifest match the checksum recorded
    on the database host, else what differs."""
    archive, sums_path, manifest_path = sources
    missing = [os.path.basename(p) for p in sources if not os.path.exists(p)]
    if missing:
        return "not received (%s)" % ", ".join(missing)
    sums = checksum_lines(archive, copy["name"])
    digest = (
        hashlib.sha256(sums.encode()).hexdigest() if os.path.isdir(archive) else sums.split()[0]
    )
    if digest != copy["sha256"]:
        return "checksum mismatch (sha256 %s, expected %s)" % (digest, copy["sha256"])
    with open(sums_path, encoding="utf-8", errors="replace") as handle:
        if handle.read() != sums:
            return "checksum file differs from the archive"
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except ValueError:
        return "manifest unreadable"
    if manifest.get("name") != copy["name"] or manifest.get("sha256") != copy["sha256"]:
        return "manifest differs from the database host's"
    return ""


def promote(sources, targets):
    """Give a checked copy its final names, archive first, manifest last."""
    folder = os.path.dirname(targets[0])
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    for source, target in zip(sources, targets):
        for path in archive_files(source) + ([source] if os.path.isdir(source) else []):
            os.chmod(path, 0o700 if os.path.isdir(path) else 0o600)
        if os.path.exists(target):
            remove(target)  # an unchecked part left by an interrupted promotion
        os.rename(source, target)
    fsync_path(folder)


def drop_incoming(incoming, check_mode):
    """Remove the incoming directory; the files that were left in it."""
    leftovers = []
    if os.path.isdir(incoming):
        for top, _dirs, files in os.walk(incoming):
            leftovers += [os.path.relpath(os.path.join(top, f), incoming) for f in files]
        if not check_mode:
            remove(incoming)
    return leftovers


def receive(params, check_mode):
    """(changed, result) of checking and promoting the copies in the incoming directory, then,
    when all matched, applying this host's retention."""
    root = params["backup_dir"]
    incoming = os.path.join(root, params["incoming"])
    promoted, bad = [], []
    for copy in params["copies"]:
        parts = copy_files(copy)
        sources = [os.path.join(incoming, p) for p in parts]
        problem = copy_problem(copy, sources)
        if problem:
            bad.append("offsite copy of %s is bad: %s" % (copy["name"], problem))
            for path in sources:
                if not check_mode:
                    remove(path)
            continue
        if not check_mode:
            promote(sources, [os.path.join(root, p) for p in parts])
        promoted.append(copy)
    leftovers = drop_incoming(incoming, check_mode)
    deleted = []
    if not bad:
        delete, _ = gfs(manifests(root), {k: params[k] for k in KEEP})
        deleted = prune(delete, check_mode)
    return bool(promoted or leftovers or bad or deleted), {
        "promoted": [c["name"] for c in promoted],
        "bytes": sum(int(c.get("size_bytes") or 0) for c in promoted),
        "bad": bad,
        "deleted": deleted,
        "leftovers_removed": leftovers,
        "msg": "; ".join(bad) or "copied %d, pruned %d" % (len(promoted), len(deleted)),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=["plan", "receive"]),
            backup_dir=dict(type="path", required=True),
            copies=dict(type="list", elements="dict", default=[]),
            incoming=dict(type="str", default=".incoming"),
            keep_last=dict(type="int", default=1),
            keep_daily=dict(type="int", default=7),
            keep_weekly=dict(type="int", default=4),
            keep_monthly=dict(type="int", default=6),
        ),
        supports_check_mode=True,
    )
    os.umask(0o077)
    params = module.params
    try:
        check_copies(params["copies"])
        if params["action"] == "plan":
            changed, result = (
                False,
                plan(
                    manifests(params["backup_dir"]), params["copies"], {k: params[k] for k in KEEP}
                ),
            )
        else:
            changed, result = receive(params, module.check_mode)
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=describe_os_error(exc, params["backup_dir"]))
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
