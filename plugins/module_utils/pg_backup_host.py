"""What the pg_backup modules of the database host share (pg_backup_dump, pg_backup_archive):
the module's options, pg_dump/pg_restore, a psycopg2 connection, the age identity, and reading
an archive whole (plain or encrypted) to tell whether it is complete."""

from __future__ import annotations

import os

from ansible_collections.opsplay.ops.plugins.module_utils.backup_manifest import (
    CHECKSUM,
    STRUCTURE,
    WHOLE,
    checksum_problem,
    is_good,
    read_whole,
    verification_news,
    whole_read_failure,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_age import (
    Identity,
    age_structure,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    BackupError,
    describe_os_error,
    manifests,
    save_manifest,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_tools import (
    GLOBALS_TRAILER,
    Tools,
)
from ansible_collections.opsplay.ops.plugins.module_utils.postgres import connect_kwargs
from ansible_collections.opsplay.ops.plugins.module_utils.timestamps import iso, now

# The options every database-host module of pg_backup takes (the role's module_defaults) ...
HOST_OPTIONS = dict(
    backup_dir=dict(type="path", required=True),
    databases=dict(type="list", elements="str", default=[]),
    bin_dir=dict(type="str", default=""),
    login_host=dict(type="str", default=""),
    login_unix_socket=dict(type="str", default="/var/run/postgresql"),
    login_port=dict(type="int", default=5432),
    login_user=dict(type="str", default="postgres"),
    login_password=dict(type="str", default="", no_log=True),
)
# ... and those that read encrypted archives (pg_backup_archive).
IDENTITY_OPTIONS = dict(
    identity=dict(type="str", default="", no_log=True),
    identity_file=dict(type="str", default=""),
)


class BackupHost(Tools):
    """The database host's backups, as a module sees them (subclassed by each module)."""

    def __init__(self, module):
        super().__init__(module.params)
        self.module = module
        self.root = self.p["backup_dir"]
        self.changed = False
        self.identity = Identity(self.p)

    def cleanup(self):
        """Remove the identity's temporary file (whatever happened)."""
        self.identity.cleanup()

    def manifests(self, databases=None):
        return manifests(self.root, databases)

    def connect(self, dbname):
        try:
            import psycopg2
        except ImportError:
            raise BackupError("python3-psycopg2 is missing on the host") from None
        where = "%s:%s" % (
            self.p["login_host"] or self.p["login_unix_socket"],
            self.p["login_port"],
        )
        try:
            return psycopg2.connect(**connect_kwargs(self.p, dbname, "opsplay pg_backup"))
        except psycopg2.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["unknown error"])[0]
            if "does not exist" in first and dbname in first:
                raise BackupError("database %s does not exist" % dbname) from exc
            raise BackupError("PostgreSQL server not reachable at %s: %s" % (where, first)) from exc

    def server(self):
        conn = self.connect(self.p["maintenance_db"])
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                version = cur.fetchone()[0]
                cur.execute(
                    "SELECT datname FROM pg_database"
                    " WHERE NOT datistemplate AND datallowconn ORDER BY 1"
                )
                databases = [row[0] for row in cur.fetchall()]
        finally:
            conn.close()
        return version, databases

    def verify_backups(self, databases, names=(), reread=True, shallow=False):
        """Checksum, then read whole, every backup of databases (or only those named): the
        result, with what the check read, is recorded in each manifest whose verification it
        changes (record_check). reread=False and shallow: see check."""
        wanted = set(names)
        results = []
        for manifest in self.manifests(databases):
            if wanted and manifest["name"] not in wanted:
                continue
            results.append(self.record_check(manifest, *self.check(manifest, reread, shallow)))
        missing = wanted - {r["name"] for r in results}
        for name in sorted(missing):
            results.append(
                {"name": name, "database": None, "ok": False, "problem": "no such backup"}
            )
        return verify_summary(results)

    def record_check(self, manifest, problem, check):
        """The result of one backup's check (problem: '' when it passed; check: what it read),
        recorded in its manifest when it changes its verification
        (backup_manifest.verification_news; not in check mode)."""
        if "unreadable" not in manifest and verification_news(manifest, problem, check):
            self.changed = True
            if not self.module.check_mode:
                manifest["verified"] = verification(problem, check)
                save_manifest(manifest)
        return {
            "name": manifest["name"],
            "database": manifest.get("database"),
            "ok": not problem,
            "problem": problem,
            "check": check,
        }

    def check_archive(self, manifest, reread=True):
        """'' when the archive is complete and matches its checksum, else the problem (check)."""
        return self.check(manifest, reread)[0]

    def check(self, manifest, reread=True, shallow=False):
        """(problem or '', what was read: backup_manifest.CHECKS) of the archive of manifest.

        reread=False: an archive whose manifest records a good whole read (read_whole) is only
        checksummed. That read took these very bytes whole (pg_restore, as they were written, or
        a later whole read, decrypted when encrypted) and the checksum is of them, so a match
        proves the archive as readable as it was then; the whole read again would only cost the
        time (issue 20: about a third of pg_dump's own time for the nightly re-verification of the
        previous backup). Any other archive is read whole: an encrypted one decrypted when the
        key is given, else checked by its age structure only (STRUCTURE, never a whole read, and
        never clearing a failure a whole read recorded). shallow: checksum and age structure
        only of an archive whose manifest records a passed verification, for a caller that reads
        the archive whole next (the restore test); one recorded bad is checked as without it."""
        if "unreadable" in manifest:
            return "manifest unreadable (%s)" % manifest["unreadable"], CHECKSUM
        path = manifest["path"]
        if not os.path.exists(path):
            return "archive missing", CHECKSUM
        problem = checksum_problem(path)
        if problem or (not reread and read_whole(manifest)):
            return problem, CHECKSUM
        shallow = shallow and is_good(manifest)
        encrypted = manifest.get("encryption") == "age"
        if encrypted and (shallow or not self.identity.given()):
            problem = age_structure(path)
            if not problem and whole_read_failure(manifest):
                return whole_read_failure(manifest), WHOLE  # the recorded whole read stands
            return problem, STRUCTURE
        if shallow:
            return "", CHECKSUM
        return self.readable(path, manifest.get("format"), manifest.get("encryption")), WHOLE

    def readable(self, path, fmt, encryption=None):
        """Read the whole archive: '' when it is complete, else the problem."""
        if encryption == "age":
            problem = age_structure(path)
            if problem or not self.identity.given():
                return problem  # without the key: checksum and structure only
            problem = self.identity.decrypt_to(
                path,
                None if fmt == "sql" else [self.tool("pg_restore"), "--file", os.devnull],
                self.env(),
            )
            if problem and not problem.startswith("cannot decrypt"):
                lines = problem.strip().splitlines()
                return "unreadable archive (%s)" % lines[0].split("error: ", 1)[-1]
            return problem
        if fmt == "sql":
            with open(path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(path) - 200))
                tail = handle.read()
            return "" if GLOBALS_TRAILER in tail else "incomplete (no end-of-dump marker)"
        return self.restore_check(path)


def verify_summary(results):
    """verify_backups' answer for the checks' results: all, the bad ones, one message."""
    bad = [r for r in results if not r["ok"]]
    return {
        "verified": results,
        "bad": bad,
        "msg": "; ".join("backup %s is bad: %s" % (r["name"], r["problem"]) for r in bad)
        or "%d backups verified" % len(results),
    }


def verification(problem, check):
    """The manifest's record of a verification done now."""
    return {"ok": not problem, "at": iso(now()), "problem": problem, "check": check}


def run_module(module, backups, action):
    """Run action (a method of backups), then exit the module with its result or one line."""
    result, error = outcome(backups, action)
    if error is not None:
        module.fail_json(msg=error)
    module.exit_json(**result)


def outcome(backups, action):
    """(action()'s result with changed, None), or (None, the error in one line): what the module
    exits with, computed wherever the work runs (in the module, or in os_user's child)."""
    os.umask(0o077)  # archives, checksums and manifests 0600, directories 0700
    try:
        return dict(action(), changed=backups.changed), None
    except BackupError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, describe_os_error(exc, backups.root)
    finally:
        backups.cleanup()  # the identity's temporary file, whatever happened
