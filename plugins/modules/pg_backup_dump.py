#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module of the pg_backup role: dump each database (and the globals), verify what was
written, and give it its final name, the manifest last (layout: module_utils/backup_manifest.py).

A dump is written under a hidden temporary name (``.NAME.tmp``), verified (pg_restore of the whole
archive to /dev/null), checksummed and described by its manifest before it is renamed; any failure
removes the temporary files and leaves every earlier backup alone. With ``encryption: age``
pg_dump's output is streamed through age while pg_restore reads the same bytes
(module_utils/pg_backup_age.py): the plaintext never touches the disk.

The backups belong to the PostgreSQL OS user (``os_user``), and pg_dump connects as it (peer
authentication on the socket). Run as root, the module first makes the backup directory that
user's (0700), then does the whole backup in a forked child that has dropped to the user for
good (module_utils/os_user.py): no second interpreter on the host, as Ansible's become_user
would start (issue 20). Run as that user, in the module itself; as anyone else, nothing is done
and ``needs_become`` is returned (the role's tasks/become.yml).
"""

from __future__ import annotations

import hashlib
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import os_user
from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import (
    GLOBALS,
    WRITTEN,
    archive_size,
    is_good,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_age import (
    AGE,
    age_structure,
    check_recipients,
    encrypt_stream,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    EXTENSIONS,
    KEEP,
    BackupError,
    checksum_lines,
    clean_leftovers,
    commit_backup,
    describe_os_error,
    newest_others,
    prepare_dir,
    retention,
    undo_backup,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_host import (
    HOST_OPTIONS,
    IDENTITY_OPTIONS,
    BackupHost,
    outcome,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_stream import (
    count_directory,
    one_pass,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_tools import (
    COMPRESS_METHODS,
    compress_option,
    disk_full_problem,
    free_bytes,
    full_disk_explained,
)
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import (
    iso,
    now,
    parse_iso,
    stamp,
)

# Imported before os_user's fork: under Mitogen the child cannot fetch a module it lacks.
PRELOAD = ("psycopg2", "fcntl")

# What the backup host is told of each verified local backup (pg_backup_offsite's copies).
OFFSITE_KEYS = ("name", "database", "sha256", "started", "format", "size_bytes")


class Dump(BackupHost):
    def fresh(self, database):
        limit = self.p["reuse_newer_than"]
        if limit <= 0:
            return None
        good = [
            m
            for m in self.manifests([database])
            if m.get("database") == database
            and is_good(m)
            # Only a backup made as now configured (encryption and its recipients) is reused.
            and m.get("encryption", "none") == self.p["encryption"]
            and m.get("recipients", [])
            == (self.p["recipients"] if self.p["encryption"] != "none" else [])
        ]
        if good and (now() - parse_iso(good[-1]["ended"])).total_seconds() < limit:
            return good[-1]["name"]
        return None

    def wanted(self, existing):
        """The databases to dump (globals first), after checking they exist and are usable."""
        wanted = self.p["databases"] or existing
        missing = [d for d in wanted if d not in existing]
        if missing:
            names = ", ".join(missing)
            raise BackupError(
                "databases %s do not exist" % names
                if len(missing) > 1
                else "database %s does not exist" % names
            )
        bad_names = [d for d in wanted if "/" in d or d.startswith(".") or d == GLOBALS]
        if bad_names:
            raise BackupError(
                "database names unusable as directory names: %s" % ", ".join(bad_names)
            )
        return ([GLOBALS] if self.p["globals"] else []) + list(wanted)

    def backup(self):
        self.compress = compress_option(self.p, self.tool("pg_dump"))
        version, existing = self.server()
        todo = self.wanted(existing)
        if not self.module.check_mode:
            prepare_dir(self.root)
        done, skipped, leftovers = [], [], []
        for database in todo:
            folder = os.path.join(self.root, database)
            if os.path.isdir(folder):
                leftovers += [
                    os.path.join(database, f)
                    for f in clean_leftovers(folder, database, self.module.check_mode)
                ]
            reuse = self.fresh(database)
            if reuse:
                skipped.append({"database": database, "name": reuse})
                continue
            self.changed = True
            if self.module.check_mode:
                done.append({"database": database, "name": None})
                continue
            prepare_dir(folder)
            done.append(self.dump_one(database, folder, version, done))
        if leftovers:
            self.changed = True
        return {
            "backups": done,
            "reused": skipped,
            "leftovers_removed": leftovers,
            "server_version": version,
            "msg": "backed up: %s; reused fresh backups: %s"
            % (
                ", ".join(d["name"] or d["database"] for d in done) or "none",
                ", ".join(s["name"] for s in skipped) or "none",
            ),
        }

    def backup_and_check(self):
        """backup(), then (as asked) verify every existing backup, apply the retention when none
        is bad, and list the verified backups for the off-host copy: one call per host."""
        result = self.backup()
        databases = self.p["databases"]
        bad = []
        if self.p["verify_existing"]:
            # This run's backups were verified as they were written: only the newest others.
            names = newest_others(
                self.manifests(databases),
                {d["name"] for d in result["backups"]},
                self.p["reverify_newest"],
            )
            # Checksummed where the manifest records a whole read (backup_manifest.read_whole);
            # an encrypted archive verified only as written is decrypted once, given the key.
            result["verify"] = (
                self.verify_backups(databases, names, reread=False)
                if names
                else {"verified": [], "bad": [], "msg": "0 backups verified"}
            )
            bad = result["verify"]["bad"]
        if self.p["retention"] and not bad:
            params = dict(self.p["retention"], backup_dir=self.root, databases=databases)
            changed, result["retention"] = retention(
                dict(params, not_good=[]), self.module.check_mode
            )
            self.changed = self.changed or changed
        if self.p["offsite_candidates"]:
            result["offsite_candidates"] = [
                {k: m.get(k) for k in OFFSITE_KEYS} for m in self.manifests(databases) if is_good(m)
            ]
        return result

    def dump_one(self, database, folder, version, done):
        """dump(), its failure worded with what completed before it."""
        try:
            return self.dump(database, folder, version)
        except BackupError as exc:
            raise BackupError(
                "backup of %s failed: %s; no backup written, earlier backups untouched%s"
                % (
                    "globals" if database == GLOBALS else "database " + database,
                    exc,
                    ""
                    if not done
                    else " (completed before the failure: %s)" % ", ".join(d["name"] for d in done),
                )
            ) from exc

    def new_name(self, database, folder, ext):
        while True:
            started = now().replace(microsecond=0)
            name = "%s_%s%s" % (database, stamp(started), ext)
            taken = (name, name + ".json", "." + name + ".tmp")  # .tmp: a dump under way
            if not any(os.path.exists(os.path.join(folder, t)) for t in taken):
                return name, started
            time.sleep(0.5)

    def dump(self, database, folder, version):
        fmt = "sql" if database == GLOBALS else self.p["format"]
        encrypted = self.p["encryption"] == "age"
        name, started = self.new_name(
            database, folder, EXTENSIONS[fmt] + (".age" if encrypted else "")
        )
        final = os.path.join(folder, name)
        tmp = {
            key: os.path.join(folder, ".%s%s.tmp" % (name, suffix))
            for key, suffix in (("archive", ""), ("sha256", ".sha256"), ("json", ".json"))
        }
        clock = time.monotonic()
        try:
            sums, counts = self.write_archive(database, fmt, tmp["archive"], folder, name)
            ended = now().replace(microsecond=0)
            manifest = self.manifest(name, database, fmt, version, sums, tmp["archive"])
            manifest.update(
                started=iso(started),
                ended=iso(ended),
                duration_seconds=round(time.monotonic() - clock, 3),
                # read as written: by pg_restore on its way (backup_manifest.read_whole)
                verified={"ok": True, "at": iso(ended), "problem": "", "check": WRITTEN},
                row_counts=counts[0],
            )
            if counts[1] is not None:
                manifest["large_objects"] = counts[1]
            commit_backup(tmp, final, sums, manifest)
        except OSError as exc:
            undo_backup(tmp, final)
            raise BackupError(describe_os_error(exc, folder)) from exc
        except BaseException:
            undo_backup(tmp, final)
            raise
        return {
            "database": database,
            "name": name,
            "path": final,
            "size_bytes": manifest["size_bytes"],
            "duration_seconds": manifest["duration_seconds"],
        }

    def manifest(self, name, database, fmt, version, sums, archive):
        """The new backup's manifest, without its times, verification and row counts."""
        manifest = {
            "name": name,
            "database": database,
            "format": fmt,
            "compress": self.compress if fmt != "sql" else "",
            "server_version": version,
            "size_bytes": archive_size(archive),
            "sha256": sums.split()[0]
            if fmt != "directory"
            else hashlib.sha256(sums.encode()).hexdigest(),
            "restore_test": None,
        }
        if self.p["encryption"] == "age":
            manifest["encryption"] = "age"
            manifest["recipients"] = list(self.p["recipients"])
        return manifest

    def write_archive(self, database, fmt, out, folder, name):
        """Write and verify the archive at out: (its checksum lines, (row counts or None, large
        objects or None)). A custom archive is read once, as it is written (pg_backup_stream);
        a directory archive is read once after pg_dump, by pg_restore, then checksummed."""
        if fmt == "sql":
            self.write_globals(out, folder)
            return checksum_lines(out, name), (None, None)
        argv = [
            self.tool("pg_dump"),
            "--format",
            fmt,
            "--lock-wait-timeout",
            self.p["lock_wait_timeout"],
            "--no-password",
        ]
        if self.compress:
            argv += ["--compress", self.compress]
        if fmt == "directory":
            if self.p["jobs"] > 1:
                argv += ["--jobs", str(self.p["jobs"])]
            self.run([*argv, "--file", out, "--dbname", database], folder)
            counts = full_disk_explained(
                count_directory, self, out, self.p["row_counts"], folder=folder
            )
            return checksum_lines(out, name), counts
        age_argv = None
        if self.p["encryption"] == "age":
            age_argv = [AGE, "--encrypt"]
            for recipient in self.p["recipients"]:
                age_argv += ["--recipient", recipient]
        digest, rows, objects = full_disk_explained(
            one_pass,
            [*argv, "--dbname", database],
            out,
            self,
            folder,
            self.p["row_counts"],
            age_argv,
            folder=folder,
        )
        if age_argv:
            problem = age_structure(out)
            if problem:
                raise BackupError("the new archive failed verification: %s" % problem)
        return "%s  %s\n" % (digest, name), (rows, objects)

    def write_globals(self, out, folder):
        """pg_dumpall --globals-only into out (through age when encrypting), checked whole."""
        argv = [self.tool("pg_dumpall"), "--globals-only"]
        if self.p["encryption"] == "age":
            encrypt_stream(argv, out, self.p["recipients"], self.env(), None, folder)
            problem = age_structure(out)
        else:
            self.run([*argv, "--file", out], folder)
            problem = self.readable(out, "sql")
        if problem:
            raise BackupError(
                disk_full_problem(folder, free_bytes(folder), problem)
                or "the new archive failed verification: %s" % problem
            )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            HOST_OPTIONS,
            maintenance_db=dict(type="str", default="postgres"),
            globals=dict(type="bool", default=True),
            format=dict(type="str", default="custom", choices=["custom", "directory"]),
            jobs=dict(type="int", default=1),
            compress=dict(type="str", default=""),
            compress_method=dict(type="str", default="gzip", choices=list(COMPRESS_METHODS)),
            compress_level=dict(type="int", default=-1),
            lock_wait_timeout=dict(type="str", default="60s"),
            row_counts=dict(type="bool", default=False),
            reuse_newer_than=dict(type="int", default=0),
            encryption=dict(type="str", default="none", choices=["none", "age"]),
            recipients=dict(type="list", elements="str", default=[]),
            verify_existing=dict(type="bool", default=False),
            reverify_newest=dict(type="int", default=1),
            retention=dict(
                type="dict",
                options={k: dict(type="int", required=True) for k in KEEP},
            ),
            offsite_candidates=dict(type="bool", default=False),
            os_user=dict(type="str", default=""),
            **IDENTITY_OPTIONS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        # In the module, before any switch: refusals (age's warning is the module's own), then
        # root's part, the backup directory of the OS user.
        check_recipients(module, p)
        made = os_user.own_directory(p["backup_dir"], p["os_user"], check=module.check_mode)
    except os_user.NeedsBecome as exc:
        module.exit_json(changed=False, needs_become=True, msg=str(exc))
    except (BackupError, os_user.ChildFailed) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=describe_os_error(exc, p["backup_dir"]))
    result, error = os_user.module_as_user(module, p["os_user"], lambda: work(module), PRELOAD)
    if error is not None:
        module.fail_json(msg=error)
    result["changed"] = result["changed"] or made
    # Root's steps after this one (the report) need no become when this module ran as root.
    module.exit_json(as_root=os.geteuid() == 0, **result)


def work(module):
    """The backup, wherever it runs: (the result, None) or (None, the error in one line)."""
    dump = Dump(module)
    return outcome(dump, dump.backup_and_check)


if __name__ == "__main__":
    main()
