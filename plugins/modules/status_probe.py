#!/usr/bin/python3
"""Ansible module of roles/status: read what the other roles left on a host; changes nothing.

- backups: per backup set (each database and ``_globals``) the newest verified backup and its age,
  and the newest restore test, by plugins/module_utils/backup_manifest's one rule (an unreadable
  manifest or a missing/truncated archive is never a verified backup);
- certificates: days left of each certificate file (certbot lineages and declared paths);
- security_updates: the record roles/security_updates keeps of its last plan;
- reboot: /var/run/reboot-required (and the packages asking for it);
- maintenance: the window of roles/maintenance_mode while its flag exists (time, run_id, reason).
"""

from __future__ import annotations

import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import backup_manifest, maintenance_flag
from ansible_collections.opsplay.ops.plugins.module_utils.certificates import (
    CertificateError,
    days_left,
    parse_time,
    read_certificate,
)
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import (
    TimestampError,
    age_seconds,
    epoch,
    now,
)


def backups(backup_dir, at):
    """({set: summary}, error or None) by backup_manifest's rule."""
    if not backup_dir:
        return {}, None
    try:
        sets = backup_manifest.backup_sets(backup_dir)
        listed = backup_manifest.manifests(backup_dir)
    except OSError as exc:
        return {}, "%s: %s" % (exc.filename or backup_dir, exc.strerror or exc)
    newest = backup_manifest.newest_verified(listed)
    tests = backup_manifest.last_restore_test(listed)
    result = {}
    for name in sets:
        mine = [m for m in listed if backup_manifest.backup_set(m) == name]
        good = newest.get(name)
        test = tests.get(name)
        result[name] = {
            "newest_verified": good["name"] if good else None,
            "newest_verified_age_seconds": age_seconds(good["ended"], at) if good else None,
            "newest_verified_timestamp": epoch(good["ended"]) if good else None,
            "bad": sum(
                1
                for m in mine
                if not backup_manifest.is_good(m) or backup_manifest.on_disk_problem(m)
            ),
            "last_restore_test_age_seconds": age_seconds(test["at_time"], at) if test else None,
            "last_restore_test_timestamp": epoch(test["at_time"]) if test else None,
            "last_restore_test_ok": test["ok"] if test else None,
        }
    return result, None


def certificates(patterns, at):
    """{path: {"days_left"} or {"error"}} of every file matching the globs (module_utils
    certificates: whole days, rounded down)."""
    result = {}
    for path in sorted({p for pattern in patterns for p in glob.glob(pattern)}):
        try:
            not_after = read_certificate(path)["not_after"]
        except CertificateError as exc:
            result[path] = {"error": str(exc)}
            continue
        result[path] = {
            "days_left": days_left(not_after, at),
            "not_after_timestamp": int(parse_time(not_after).timestamp()),
        }
    return result


def read_record(path, at_epoch):
    """The JSON record at path with its age (recorded_age_seconds, from its mtime), or None."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            return None
        recorded = os.stat(path).st_mtime
        data["recorded_age_seconds"] = int(at_epoch - recorded)
        data["recorded_timestamp"] = int(recorded)
        return data
    except (OSError, ValueError):
        return None


def reboot(flag="/var/run/reboot-required"):
    if not os.path.exists(flag):
        return {"required": False, "packages": []}
    try:
        with open(flag + ".pkgs", encoding="utf-8") as handle:
            packages = sorted({line.strip() for line in handle if line.strip()})
    except OSError:
        packages = []
    return {"required": True, "packages": packages}


def maintenance(path):
    """The open maintenance window (the flag holds its start entry), or None."""
    exists, window = maintenance_flag.read(path)
    if not exists:
        return None
    if window is None:
        return {"time": None, "run_id": None, "reason": "flag %s unreadable" % path}
    try:
        since = epoch(window.get("time"))
    except TimestampError:
        since = None
    return {
        "time": window.get("time"),
        "since_epoch": since,
        "run_id": window.get("run_id") or None,
        "reason": window.get("reason"),
        "scheduled": bool(window.get("scheduled")),
    }


def status(params, at):
    """The whole read-out for one host (``at``: the current time, a UTC datetime)."""
    at_epoch = at.timestamp()
    found, error = backups(params["backup_dir"], at)
    return {
        "backups": found,
        "backups_error": error,
        "certificates": certificates(params["certificates"], at),
        "security_updates": read_record(params["security_record"], at_epoch),
        "reboot": reboot(),
        "maintenance": maintenance(params["maintenance_flag"]),
    }


def stats(host, found):
    """What ansible.builtin.set_stats would hand the run: status.HOST, aggregated over hosts."""
    return {"data": {"status": {host: found}}, "per_host": False, "aggregate": True}


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": ""},
            "backup_dir": {"type": "str", "default": ""},
            "certificates": {"type": "list", "elements": "str", "default": []},
            "security_record": {"type": "str", "default": ""},
            "maintenance_flag": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    found = status(module.params, now())
    result = {"changed": False, "status": found}
    if module.params["host"]:
        result["ansible_stats"] = stats(module.params["host"], found)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
