#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module of the pg_backup role: read the backups of the database host (list, verify),
annotate them (record a restore test) and restore one (restore). Layout and manifests:
module_utils/backup_manifest.py; reading an archive whole: module_utils/pg_backup_host.py.

Dumping is pg_backup_dump, pruning pg_backup_retention, off-host copies pg_backup_offsite.
"""

from __future__ import annotations

import datetime
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import (
    is_good,
    on_disk_problem,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    BackupError,
    save_manifest,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_host import (
    HOST_OPTIONS,
    IDENTITY_OPTIONS,
    BackupHost,
    run_module,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_report import summarize
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_tools import (
    describe_tool_error,
)
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import iso, now


class Archive(BackupHost):
    """The actions of the module on the backups under backup_dir."""

    def verify(self):
        return self.verify_backups(self.p["databases"], self.p["names"])

    def listing(self):
        backups = []
        recheck = self.p["recheck"]
        for m in self.manifests(self.p["databases"]):
            problem = on_disk_problem(m, recheck == "checksums") if recheck != "none" else ""
            on_disk = {"ok": not problem, "problem": problem, "checked": recheck}
            backups.append(
                {
                    k: m.get(k)
                    for k in (
                        "name",
                        "database",
                        "path",
                        "format",
                        "started",
                        "ended",
                        "duration_seconds",
                        "size_bytes",
                        "sha256",
                        "server_version",
                        "verified",
                        "restore_test",
                        "row_counts",
                    )
                }
                | {
                    # Recorded as verified and, checked now, still the archive verified.
                    "good": is_good(m) and not problem,
                    "on_disk": on_disk,
                    "encryption": m.get("encryption", "none"),
                    "recipients": m.get("recipients", []),
                }
            )
        newest = {b["database"]: b for b in backups if b["good"]}
        return {
            "backups": backups,
            "newest_good": newest,
            "summary": summarize(backups),
            "msg": "%d backups" % len(backups),
        }

    def restore(self):
        """Restore backup `name` into the existing database `dbname`, stopping at the first SQL
        error; an encrypted archive is decrypted on the way (never written in plaintext)."""
        found = [m for m in self.manifests() if m["name"] == self.p["name"]]
        if not found:
            raise BackupError("no backup named %s" % self.p["name"])
        manifest = found[0]
        self.changed = True
        if self.module.check_mode:
            return {"msg": "would restore %s" % manifest["name"], "delta": "0:00:00"}
        clock = time.monotonic()
        argv = [
            self.tool("pg_restore"),
            "--exit-on-error",
            "--no-password",
            "--dbname",
            self.p["dbname"],
        ]
        if manifest.get("encryption") == "age":
            # From a pipe pg_restore runs one job.
            problem = self.identity.decrypt_to(manifest["path"], argv, self.env())
            if problem.startswith("cannot decrypt"):
                raise BackupError("backup %s: %s" % (manifest["name"], problem))
            if problem:
                raise BackupError(describe_tool_error("pg_restore", problem, self.p["dbname"]))
        else:
            self.run([*argv, "--jobs", str(self.p["jobs"]), manifest["path"]], self.p["dbname"])
        seconds = time.monotonic() - clock
        return {
            "msg": "restored %s into %s" % (manifest["name"], self.p["dbname"]),
            "duration_seconds": round(seconds, 3),
            "delta": str(datetime.timedelta(seconds=seconds)),
        }

    def record(self):
        for m in self.manifests():
            if m["name"] == self.p["name"]:
                result = dict(self.p["result"] or {})
                result.setdefault("at", iso(now()))
                self.changed = True
                if not self.module.check_mode:
                    m["restore_test"] = result
                    save_manifest(m)
                return {"msg": "recorded restore test of %s" % m["name"]}
        raise BackupError("no backup named %s" % self.p["name"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            HOST_OPTIONS,
            **IDENTITY_OPTIONS,
            action=dict(type="str", required=True, choices=["verify", "list", "record", "restore"]),
            names=dict(type="list", elements="str", default=[]),
            recheck=dict(type="str", default="none", choices=["none", "size", "checksums"]),
            name=dict(type="str"),
            dbname=dict(type="str"),
            jobs=dict(type="int", default=1),
            result=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    archive = Archive(module)
    actions = {
        "verify": archive.verify,
        "list": archive.listing,
        "record": archive.record,
        "restore": archive.restore,
    }
    run_module(module, archive, actions[module.params["action"]])


if __name__ == "__main__":
    main()
