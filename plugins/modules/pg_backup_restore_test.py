#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module of the pg_backup role: the restore test. The newest verified backup of each
database is checked again (checksum; the restore reads it whole), restored into a scratch
database with pg_restore --exit-on-error, its per-table row counts compared with those
recorded at backup time, and the scratch database dropped whatever happened; the result is
recorded in the backup's manifest. An unencrypted single-file archive restored by one job is
read once: this module feeds it to pg_restore and checksums it on the way, and a checksum that
does not match makes the backup bad, whatever the restore said (the file is read to its end
either way). Runs as the PostgreSQL OS user. The problems are returned,
not raised: the role's pg_backup_report (root) writes the metrics first, then fails the host
naming them.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import (
    CHECKSUM,
    GLOBALS,
    WHOLE,
    checksum_problem,
    is_good,
    read_whole,
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
    verification,
    verify_summary,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_stream import (
    restore_reading_once,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_user_tables import (
    INSERTED_ROWS,
    ROW_COUNTS,
)
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import iso, now

NO_KEY = (
    "backups %s are encrypted (age): give their private key with pg_backup_encryption_identity"
    " (from Ansible Vault) or pg_backup_encryption_identity_file"
)


class ArchiveBad(Exception):
    """The archive read once for its restore does not match its checksum (the problem)."""


def candidates(manifests):
    """The newest verified backup of each database (globals are verified, not restored)."""
    newest = {m["database"]: m for m in manifests if is_good(m) and m.get("database") != GLOBALS}
    return [newest[db] for db in sorted(newest)]


def first_error(text):
    """The line of pg_restore's (or the server's) complaint that says what went wrong."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    line = next((x for x in lines if re.search("error|ERROR|failed", x)), None)
    line = line or (lines[0] if lines else "failed")
    return re.sub("^pg_restore: error: ", "", line)


def count_differences(recorded, restored):
    """'table: backup N, restored M' for every table whose counts differ (none recorded: none)."""
    recorded = recorded or restored
    return [
        "%s: backup %s, restored %s"
        % (table, recorded.get(table, "none"), restored.get(table, "none"))
        for table in sorted(set(recorded) | set(restored))
        if recorded.get(table) != restored.get(table)
    ]


def rows_restored(recorded, inserted, count_exactly):
    """The restored row count of each table, to compare with recorded (the archive's counts).

    inserted is the server's own count of the rows it inserted into each table of the scratch
    database, made for this restore (pg_stat_get_tuples_inserted, minus any deleted: what the
    COPY command tags said, table by table; a failed COPY fails the restore before this). When
    it equals recorded table for table, that is the answer, without a second scan of every
    restored table (count(*) after a restore also writes every page's hint bits: issue 20).
    Otherwise (statistics not flushed yet, track_counts off, or a real difference)
    count_exactly() counts every table with count(*), and that decides."""
    if not recorded or inserted == recorded:
        return inserted
    return count_exactly()


def scratch_name(prefix, database):
    return (prefix + database)[:63]


class RestoreTest(BackupHost):
    def test_all(self):
        tested = candidates(self.manifests(self.p["databases"]))
        if not tested:
            raise BackupError("no verified backup to restore-test in %s" % self.root)
        locked = [m["name"] for m in tested if m.get("encryption") == "age"]
        if locked and not self.identity.given():
            raise BackupError(NO_KEY % ", ".join(locked))
        # Checksummed (and an encrypted one's age structure) only: the restore below reads each
        # archive whole (decrypted, pg_restore --exit-on-error), so a whole read before it would
        # read it twice; that restore is recorded as its whole read (test_one). One read once
        # (reads_once) is checksummed by its restore, not before.
        ahead = {m["name"] for m in tested if not self.reads_once(m)}
        checks = self.verify_backups(None, ahead, shallow=True)["verified"] if ahead else []
        bad = {c["name"] for c in checks if not c["ok"]}
        results = {}
        for manifest in tested:
            if self.module.check_mode or manifest["name"] in bad:
                continue
            try:
                results[manifest["name"]] = self.test_one(manifest)
            except ArchiveBad as exc:
                checks.append(self.record_check(manifest, str(exc), CHECKSUM))
                continue
            if manifest["name"] not in ahead:  # read once: its restore was its checksum
                checks.append(self.record_check(manifest, "", CHECKSUM))
        verify = verify_summary(checks)
        problems = ["backup %s is bad: %s" % (b["name"], b["problem"]) for b in verify["bad"]]
        problems += [
            "restore test of %s failed: %s" % (name, r["message"])
            for name, r in results.items()
            if not r["ok"]
        ]
        names = ", ".join(m["name"] for m in tested)
        return {
            "verify": verify,
            "tested": results,
            "problems": problems,
            "msg": "; ".join(problems)
            or "restore test %s: %s" % ("would run" if self.module.check_mode else "ok", names),
        }

    def test_one(self, manifest):
        """Restore, count, drop, record: the recorded result."""
        scratch = scratch_name(self.p["prefix"], manifest["database"])
        seconds, error = 0.0, ""
        try:
            self.create(scratch)
            clock = time.monotonic()
            self.restore_into(manifest, scratch)
            seconds = time.monotonic() - clock
            if not read_whole(manifest):
                # Decrypted and restored whole: the whole read later checks' checksum can trust.
                manifest["verified"] = verification("", WHOLE)
            recorded = manifest.get("row_counts")
            restored = rows_restored(
                recorded, self.inserted_rows(scratch), lambda: self.count_rows(scratch)
            )
            differ = count_differences(recorded, restored)
            if "large_objects" in manifest:  # counted from the archive since issue 20
                differ += count_differences(
                    {"large objects": manifest["large_objects"]},
                    {"large objects": self.count_large_objects(scratch)},
                )
            if differ:
                error = "row counts differ: " + ", ".join(differ)
        except BackupError as exc:
            error = first_error(str(exc))
        finally:
            drop_error = self.drop(scratch)
        error = error or drop_error
        result = {
            "ok": not error,
            "message": error,
            "database": manifest["database"],
            "duration_seconds": round(seconds, 1),
            "at": iso(now()),
        }
        self.changed = True
        manifest["restore_test"] = result
        save_manifest(manifest)
        return result

    def reads_once(self, manifest):
        """Whether the restore test checksums this backup as it restores it: an unencrypted
        custom-format archive (one file) restored by one job (pg_restore --jobs needs the file
        itself), outside check mode (nothing is restored there)."""
        return (
            not self.module.check_mode
            and self.p["jobs"] <= 1
            and manifest.get("format") == "custom"
            and manifest.get("encryption", "none") == "none"
        )

    def restore_into(self, manifest, dbname):
        argv = [self.tool("pg_restore"), "--exit-on-error", "--no-password", "--dbname", dbname]
        if self.reads_once(manifest):
            path = manifest["path"]
            if not os.path.exists(path):
                raise ArchiveBad("archive missing")
            code, text, digest = restore_reading_once(argv, path, self.env())
            problem = checksum_problem(path, {os.path.basename(path): digest})
            if problem:
                raise ArchiveBad(problem)
            if code != 0:
                raise BackupError(text or "pg_restore failed")
            return
        if manifest.get("encryption") == "age":
            problem = self.identity.decrypt_to(manifest["path"], argv, self.env())
            if problem.startswith("cannot decrypt"):
                raise BackupError("backup %s: %s" % (manifest["name"], problem))
            if problem:
                raise BackupError(problem)
            return
        proc = self.tool_run([*argv, "--jobs", str(self.p["jobs"]), manifest["path"]])
        if proc.returncode != 0:
            raise BackupError(proc.stderr or proc.stdout or "pg_restore failed")

    def tool_run(self, argv):
        return subprocess.run(
            argv, env=self.env(), capture_output=True, universal_newlines=True, check=False
        )

    def sql(self, dbname, statement, args=None, fetch=False):
        conn = self.connect(dbname)  # fails in one line without psycopg2
        import psycopg2

        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement, args)
                return cur.fetchall() if fetch else None
        except psycopg2.Error as exc:
            raise BackupError(str(exc)) from exc
        finally:
            conn.close()

    def create(self, scratch):
        from psycopg2 import sql

        found = self.sql(
            self.p["maintenance_db"],
            "SELECT 1 FROM pg_database WHERE datname = %s",
            [scratch],
            True,
        )
        if not found:
            self.sql(
                self.p["maintenance_db"],
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)),
            )

    def count_rows(self, scratch):
        rows = self.sql(scratch, ROW_COUNTS, fetch=True)
        return {row[0]: int(row[1]) for row in rows}

    def inserted_rows(self, scratch):
        return {row[0]: int(row[1]) for row in self.sql(scratch, INSERTED_ROWS, fetch=True)}

    def count_large_objects(self, scratch):
        rows = self.sql(
            scratch, "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata", fetch=True
        )
        return int(rows[0][0])

    def drop(self, scratch):
        """'' once the scratch database is gone, else why not."""
        from psycopg2 import sql

        try:
            self.sql(
                self.p["maintenance_db"],
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)),
            )
        except BackupError as exc:
            return "dropping %s failed: %s" % (scratch, first_error(str(exc)))
        return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            HOST_OPTIONS,
            **IDENTITY_OPTIONS,
            maintenance_db=dict(type="str", default="postgres"),
            prefix=dict(type="str", default="opsplay_restore_test_"),
            jobs=dict(type="int", default=1),
        ),
        supports_check_mode=True,
    )
    test = RestoreTest(module)
    run_module(module, test, test.test_all)


if __name__ == "__main__":
    main()
