#!/usr/bin/env python3
"""Status probe (roles/status), run on the host with ansible.builtin.script; changes nothing.

Reads what the other roles left on the host and prints one JSON document:
- backups: per database the newest verified backup (age) and the newest restore test, from the
  manifests roles/pg_backup writes beside each archive;
- certificates: days left of each certificate file (certbot lineages and declared paths);
- security_updates: the record roles/security_updates keeps of its last plan;
- reboot_required: /var/run/reboot-required (and the packages asking for it);
- maintenance: the window of roles/maintenance_mode while its flag exists (time, run_id, reason).
Argument: a JSON object {"backup_dir", "certificates": [glob], "security_record": path,
"maintenance_flag": path}.
"""

import calendar
import glob
import json
import os
import subprocess
import sys
import time


def stamp(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def backups(backup_dir, now):
    result = {}
    try:
        databases = sorted(
            d for d in os.listdir(backup_dir) if os.path.isdir(os.path.join(backup_dir, d))
        )
    except OSError:
        return result
    for database in databases:
        newest, tested = None, None
        directory = os.path.join(backup_dir, database)
        for name in os.listdir(directory):
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    manifest = json.load(handle)
                ended = stamp(manifest["ended"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if (manifest.get("verified") or {}).get("ok") is True and (
                newest is None or ended > newest[0]
            ):
                newest = (ended, manifest.get("name", name))
            test = manifest.get("restore_test")
            if isinstance(test, dict) and test.get("at"):
                try:
                    at = stamp(test["at"])
                except ValueError:
                    continue
                if tested is None or at > tested["at_epoch"]:
                    tested = {"at_epoch": at, "ok": bool(test.get("ok")), "backup": name}
        result[database] = {
            "newest_verified": newest[1] if newest else None,
            "newest_verified_age_seconds": int(now - newest[0]) if newest else None,
            "last_restore_test_age_seconds": int(now - tested["at_epoch"]) if tested else None,
            "last_restore_test_ok": tested["ok"] if tested else None,
        }
    return result


def certificates(patterns, now):
    result = {}
    for path in sorted({p for pattern in patterns for p in glob.glob(pattern)}):
        proc = subprocess.run(
            ["openssl", "x509", "-noout", "-enddate", "-in", path],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            text = proc.stdout.strip().split("=", 1)[1]
            not_after = calendar.timegm(time.strptime(text, "%b %d %H:%M:%S %Y %Z"))
        except (IndexError, ValueError):
            result[path] = {"error": (proc.stderr.strip().splitlines() or ["unreadable"])[-1]}
            continue
        result[path] = {"days_left": round((not_after - now) / 86400, 1)}
    return result


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        data["recorded_age_seconds"] = int(time.time() - os.stat(path).st_mtime)
        return data
    except (OSError, ValueError):
        return None


def reboot():
    if not os.path.exists("/var/run/reboot-required"):
        return {"required": False, "packages": []}
    try:
        with open("/var/run/reboot-required.pkgs", encoding="utf-8") as handle:
            packages = sorted({line.strip() for line in handle if line.strip()})
    except OSError:
        packages = []
    return {"required": True, "packages": packages}


def maintenance(path):
    """The open maintenance window (the flag holds its start entry), or None."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            window = json.load(handle)
    except (OSError, ValueError):
        window = None
    if not isinstance(window, dict):
        return {"time": None, "run_id": None, "reason": "flag %s unreadable" % path}
    try:
        since = stamp(window.get("time") or "")
    except ValueError:
        since = None
    return {
        "time": window.get("time"),
        "since_epoch": since,
        "run_id": window.get("run_id") or None,
        "reason": window.get("reason"),
        "scheduled": bool(window.get("scheduled")),
    }


def main():
    args = json.loads(sys.argv[1])
    now = time.time()
    print(
        json.dumps(
            {
                "backups": backups(args.get("backup_dir") or "", now),
                "certificates": certificates(args.get("certificates") or [], now),
                "security_updates": read_json(args.get("security_record") or ""),
                "reboot": reboot(),
                "maintenance": maintenance(args.get("maintenance_flag") or ""),
            }
        )
    )


if __name__ == "__main__":
    main()
