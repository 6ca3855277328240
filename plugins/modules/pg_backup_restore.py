#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module opsplay.ops.pg_backup_restore:
what a restore does, and the swap into place (roles/pg_backup).

What it decides and does, its options and its results: pg_backup_restore.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import re
import time

from ansible.module_utils.basic import AnsibleModule

TEMPORARY = "__restoring"
PREVIOUS = "__previous"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_$-]{0,40}$")
# How long the sessions of a database get to end once terminated.
SESSION_WAIT_SECONDS = 10
# Attempts of the swap transaction when a session slipped in after the termination.
SWAP_ATTEMPTS = 3


class RestoreError(Exception):
    """A failure reported as one line; bad_input when the operator's options are the cause."""

    def __init__(self, message, bad_input=False):
        super().__init__(message)
        self.bad_input = bad_input


# -- decisions (pure) --------------------------------------------------------------------------
def own_backups(backups, database):
    """The backups of `database` itself (its manifests say so), oldest first: never another
    database's, never the globals."""
    return [b for b in backups if b.get("database") == database]


def choose_backup(backups, database, wanted):
    """The backup to restore: the newest verified backup of `database` (wanted latest or empty)
    or the one of its backups named `wanted`, else None."""
    own = own_backups(backups, database)
    if wanted in ("", "latest"):
        good = [b for b in own if b.get("good")]
        return max(good, key=lambda b: (b.get("started") or "", b["name"])) if good else None
    named = [b for b in own if b["name"] == wanted]
    return named[0] if named else None


def databases_with_backups(backups):
    """Databases with at least one verified backup, sorted (the globals are no database)."""
    return sorted(
        {b["database"] for b in backups if b.get("good") and b.get("database") != "_globals"}
    )


def no_backup_message(backups, database, wanted, host, backup_dir):
    """One line: which backup of which database is missing where, and what is there instead."""
    where = "on %s" % host if host else ""
    if backup_dir:
        where = (where + " in " if where else "in ") + backup_dir
    if wanted in ("", "latest"):
        own = own_backups(backups, database)
        what = (
            "no verified backup of database %s %s (%d failed)" % (database, where, len(own))
            if own
            else "no backup of database %s %s" % (database, where)
        )
    else:
        what = "no backup named %s of database %s %s" % (wanted, database, where)
        if any(b["name"] == wanted for b in backups):
            other = next(b["database"] for b in backups if b["name"] == wanted)
            return what + " (it is a backup of %s)" % other
    others = databases_with_backups(backups)
    return "%s; databases with backups: %s" % (what, ", ".join(others) or "none")


def target_name(database, choice, target):
    """The database restored into: the one given, or DATABASE_restored_YYYYMMDDTHHMMSS."""
    if target:
        return target
    stamp = re.sub(r"[-:Z]", "", (choice or {}).get("started") or "")
    return "%s_restored_%s" % (database, stamp)


def describe_sessions(sessions):
    """'2 sessions (alice psql, bob app)' of pg_stat_activity rows (user, application)."""
    who = ", ".join(
        " ".join(part for part in (user or "?", app) if part) for user, app in sessions[:5]
    )
    more = ", ..." if len(sessions) > 5 else ""
    return "%d session%s (%s%s)" % (len(sessions), "" if len(sessions) == 1 else "s", who, more)


def plan(params, existing, sessions):
    """The restore's plan, or RestoreError.

    params: the module's parameters; existing: {name: allows connections} of the databases among
    the target, the temporary and the previous names; sessions: (user, application) of every
    other session on the target."""
    database = params["database"]
    if not database:
        raise RestoreError("missing -e database=NAME (the database to restore)", bad_input=True)
    choice = choose_backup(params["backups"], database, params["backup"])
    if choice is None:
        raise RestoreError(
            no_backup_message(
                params["backups"], database, params["backup"], params["host"], params["backup_dir"]
            ),
            bad_input=True,
        )
    target = target_name(database, choice, params["target"])
    if not NAME.match(target):
        raise RestoreError(
            "unusable target database name: %s (letters, digits, _ $ -, at most 41)" % target,
            bad_input=True,
        )
    if choice.get("encryption") == "age" and not params["key_given"]:
        raise RestoreError(
            "backup %s is encrypted (age): give its private key with "
            "pg_backup_encryption_identity (from Ansible Vault) or "
            "pg_backup_encryption_identity_file" % choice["name"],
            bad_input=True,
        )
    temporary, previous = target + TEMPORARY, target + PREVIOUS
    replace = target in existing
    if replace and not params["replace"]:
        raise RestoreError(
            "database %s exists: restore into a new database (-e target=NAME) or replace it "
            "with -e replace=true" % target,
            bad_input=True,
        )
    if previous in existing:
        raise RestoreError(
            "database %s exists (the data %s had before an earlier restore): drop it or rename "
            "it first; nothing restored, %s left as it was" % (previous, target, target)
        )
    if replace and sessions and not params["terminate_sessions"]:
        raise RestoreError(
            "database %s has %s: nothing restored, %s left as it was; close them or end them "
            "with -e terminate_sessions=true" % (target, describe_sessions(sessions), target)
        )
    return {
        "choice": choice,
        "target": target,
        "temporary": temporary,
        "previous": previous,
        "replace": replace,
        "leftover": temporary in existing,
        "allow_connections": existing.get(target, True),
        "sessions": len(sessions) if replace else 0,
    }


def swap_statements(target, temporary, previous, replace, allow_connections):
    """The statements of the swap transaction, as (SQL with {} for identifiers, identifiers)."""
    steps = []
    if replace:
        steps.append(("ALTER DATABASE {} RENAME TO {}", (target, previous)))
    steps.append(("ALTER DATABASE {} RENAME TO {}", (temporary, target)))
    steps.append(
        (
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS %s"
            % ("true" if allow_connections else "false"),
            (target,),
        )
    )
    return steps


# -- the server --------------------------------------------------------------------------------
class Server:
    def __init__(self, params):
        self.p = params
        self.conn = None

    def connect(self):
        try:
            import psycopg2
        except ImportError:
            raise RestoreError("python3-psycopg2 is missing on the host") from None
        try:
            self.conn = psycopg2.connect(
                dbname=self.p["maintenance_db"],
                host=self.p["login_host"] or self.p["login_unix_socket"],
                port=self.p["login_port"],
                user=self.p["login_user"],
                password=self.p["login_password"] or None,
                connect_timeout=10,
                application_name="opsplay pg_backup restore",
            )
        except psycopg2.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["unknown error"])[0]
            raise RestoreError(
                "PostgreSQL server not reachable at %s:%s: %s"
                % (self.p["login_host"] or self.p["login_unix_socket"], self.p["login_port"], first)
            ) from exc
        self.conn.autocommit = True
        return self

    def close(self):
        if self.conn is not None:
            self.conn.close()

    def query(self, sql, args=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def execute(self, template, names):
        from psycopg2 import sql

        with self.conn.cursor() as cur:
            cur.execute(sql.SQL(template).format(*[sql.Identifier(n) for n in names]))

    def existing(self, names):
        rows = self.query(
            "SELECT datname, datallowconn FROM pg_database WHERE datname = ANY(%s)", (list(names),)
        )
        return {name: allow for name, allow in rows}

    def sessions(self, database):
        return self.query(
            "SELECT usename, application_name FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " ORDER BY pid",
            (database,),
        )

    def terminate(self, database):
        self.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )

    def wait_gone(self, database):
        """Wait until no other session is on `database`; the ones left, if any."""
        deadline = time.monotonic() + SESSION_WAIT_SECONDS
        while True:
            left = self.sessions(database)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def swap(server, params):
    """The swap described in pg_backup_restore.yml (steps 1-3 below); returns the message, raises
    RestoreError naming where the data of the target is."""
    import psycopg2

    target = params["target"]
    temporary, previous = target + TEMPORARY, target + PREVIOUS
    replace, terminate = params["replace"], params["terminate_sessions"]
    kept = "%s left as it was" % target if replace else "%s not created" % target
    # 1. The restored copy is ours until it has its name.
    close_restored_copy(server, temporary, kept)
    # 2. Both renames in one transaction: the target exists under its name at every moment.
    statements = swap_statements(target, temporary, previous, replace, params["allow_connections"])
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        server.conn.autocommit = False
        try:
            if replace:
                others = server.sessions(target)
                if others and not terminate:
                    raise RestoreError(
                        "database %s has %s: not replaced, %s; close them or end them with "
                        "-e terminate_sessions=true" % (target, describe_sessions(others), kept)
                    )
                if others:
                    server.terminate(target)
            for template, names in statements:
                server.execute(template, names)
            server.conn.commit()
            break
        except psycopg2.Error as exc:
            server.conn.rollback()
            busy = getattr(exc, "pgcode", None) == "55006"  # object_in_use: sessions came in
            if busy and attempt < SWAP_ATTEMPTS and (terminate or not replace):
                continue
            raise RestoreError(
                "moving the restored copy into place failed: %s; rolled back, %s"
                % (first_line(exc), kept)
            ) from exc
        except BaseException:
            server.conn.rollback()
            raise
        finally:
            server.conn.autocommit = True
    # 3. Only now the previous data goes (or stays).
    if not replace:
        return "created %s" % target
    return drop_previous(server, target, previous, params["keep_previous"])


def close_restored_copy(server, temporary, kept):
    """Close the restored copy to new sessions and end the ones already there (a monitoring
    agent would make its rename fail); RestoreError saying what stays as it was otherwise."""
    import psycopg2

    try:
        server.execute("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", (temporary,))
        server.terminate(temporary)
        left = server.wait_gone(temporary)
    except psycopg2.Error as exc:
        raise RestoreError(
            "closing %s failed: %s; %s" % (temporary, first_line(exc), kept)
        ) from exc
    if left:
        raise RestoreError(
            "%s still has %s after they were terminated; %s"
            % (temporary, describe_sessions(left), kept)
        )


def drop_previous(server, target, previous, keep):
    """After the swap: drop the target's previous data, or keep it; returns the message."""
    import psycopg2

    if keep:
        return "replaced %s; its previous data kept as %s" % (target, previous)
    try:
        server.execute("DROP DATABASE {}", (previous,))
    except psycopg2.Error as exc:
        raise RestoreError(
            "replaced %s, but dropping its previous data failed: %s; that data is still in "
            "database %s" % (target, first_line(exc), previous)
        ) from exc
    return "replaced %s (previous data dropped)" % target


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=["plan", "swap"]),
            backups=dict(type="list", elements="dict", default=[]),
            database=dict(type="str", default=""),
            backup=dict(type="str", default="latest"),
            target=dict(type="str", default=""),
            replace=dict(type="bool", default=False),
            terminate_sessions=dict(type="bool", default=False),
            keep_previous=dict(type="bool", default=False),
            key_given=dict(type="bool", default=False),
            backup_dir=dict(type="str", default=""),
            host=dict(type="str", default=""),
            allow_connections=dict(type="bool", default=True),
            login_host=dict(type="str", default=""),
            login_unix_socket=dict(type="str", default="/var/run/postgresql"),
            login_port=dict(type="int", default=5432),
            login_user=dict(type="str", default="postgres"),
            login_password=dict(type="str", default="", no_log=True),
            maintenance_db=dict(type="str", default="postgres"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    server = Server(p)
    try:
        server.connect()
        if p["action"] == "plan":
            target = target_name(
                p["database"], choose_backup(p["backups"], p["database"], p["backup"]), p["target"]
            )
            existing = server.existing([target, target + TEMPORARY, target + PREVIOUS])
            sessions = server.sessions(target) if target in existing else []
            result = plan(p, existing, sessions)
            result["msg"] = "restore %s into %s%s" % (
                result["choice"]["name"],
                result["target"],
                " (replacing it)" if result["replace"] else "",
            )
            module.exit_json(changed=False, **result)
        if not NAME.match(p["target"]):
            raise RestoreError("unusable target database name: %s" % p["target"], bad_input=True)
        if module.check_mode:
            module.exit_json(
                changed=True, msg="would move %s into place" % (p["target"] + TEMPORARY)
            )
        module.exit_json(changed=True, msg=swap(server, p))
    except RestoreError as exc:
        module.fail_json(msg=str(exc), opsplay_bad_input=exc.bad_input)
    finally:
        server.close()


if __name__ == "__main__":
    main()
