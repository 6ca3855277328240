"""backup then restore-test through the CLI on the lab (Mitogen, become_user postgres)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from opsplay.errors import ExitCode


def test_backup_then_restore_test(run_opsplay):
    backup = run_opsplay("run", "backup", "--env", "lab", "--limit", "opsplay-lab-1", "--json")
    assert backup.code == ExitCode.OK, backup.out[-2000:] + backup.err
    listing = subprocess.run(
        [
            "podman",
            "exec",
            "opsplay-lab-1",
            "find",
            "/var/backups/postgresql",
            "-name",
            "postgres_*.dump",
            "-perm",
            "0600",
            "-user",
            "postgres",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listing, "no verified archive of the postgres database with mode 0600"
    tested = run_opsplay(
        "run", "restore-test", "--env", "lab", "--limit", "opsplay-lab-1", "--json"
    )
    assert tested.code == ExitCode.OK, tested.out[-2000:] + tested.err
    assert json.loads(tested.out)["hosts"]["opsplay-lab-1"]["failed"] == 0


# -- restore with replace=true killed midway (issue 16 item 1) ---------------------------------
HOST = "opsplay-lab-1"
ROWS = 1_000_000


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        ["podman", "exec", HOST, "runuser", "-u", "postgres", "--",
         "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def databases(prefix: str) -> list[str]:
    names = psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY 1")
    return names.split()


def pg_restore_running() -> bool:
    found = subprocess.run(["podman", "exec", HOST, "pgrep", "-x", "pg_restore"], check=False)
    return found.returncode == 0


def drop_rtest() -> None:
    for name in databases("rtest"):
        psql(f'DROP DATABASE "{name}" WITH (FORCE)')
    subprocess.run(
        ["podman", "exec", HOST, "rm", "-rf", "/var/backups/postgresql/rtest"], check=True
    )


def test_sigkill_during_a_replacing_restore_keeps_the_live_database(run_opsplay, lab_inventories):
    # kill -9 of opsplay's whole process group while pg_restore fills rtest__restoring: the
    # live rtest keeps its rows, and the next restore drops the partial copy and replaces rtest.
    drop_rtest()
    psql("CREATE DATABASE rtest")
    psql(f"CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, {ROWS}) g",
         "rtest")  # fmt: skip
    psql("ALTER TABLE t ADD PRIMARY KEY (id)", "rtest")
    try:
        only_rtest = json.dumps(
            {
                "pg_backup_databases": ["rtest"],
                "pg_backup_globals": False,
                "pg_backup_offsite_host": "",
            }
        )
        backup = run_opsplay("run", "backup", "--env", "lab", "--limit", HOST, "-e", only_rtest)
        assert backup.code == ExitCode.OK, backup.out[-2000:] + backup.err
        psql("DELETE FROM t WHERE id > 10", "rtest")  # the live data: 10 rows, the backup's: ROWS

        restore = [
            *["run", "restore", "--env", "lab", "--limit", HOST, "--yes"],
            *["-e", "database=rtest", "-e", "target=rtest", "-e", "replace=true"],
        ]
        proc = run_opsplay.start(*restore)
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None and time.monotonic() < deadline:
                if pg_restore_running() and "rtest__restoring" in databases("rtest"):
                    break
                time.sleep(0.1)
            assert proc.poll() is None, "the restore ended before pg_restore was seen"
            assert pg_restore_running(), "pg_restore never started"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        # Whatever of the killed run still works on the host (pg_restore into the copy) ends.
        deadline = time.monotonic() + 300
        while pg_restore_running() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not pg_restore_running()
        assert psql("SELECT count(*) FROM t", "rtest") == "10"  # the live rows, untouched
        assert databases("rtest") == ["rtest", "rtest__restoring"]

        again = run_opsplay(*restore)
        assert again.code == ExitCode.OK, again.out[-2000:] + again.err
        assert psql("SELECT count(*) FROM t", "rtest") == str(ROWS)
        assert databases("rtest") == ["rtest"]
    finally:
        drop_rtest()


def test_restore_of_a_database_without_backups_is_bad_input(run_opsplay):
    # issue 16 item 2: it took the newest backup of any database (the globals' SQL file) before
    proc = run_opsplay(
        *["run", "restore", "--env", "lab", "--limit", HOST, "--yes"],
        *["-e", "database=nosuchdb", "-e", "target=nosuchdb_copy"],
    )
    assert proc.code == ExitCode.USAGE, proc.out[-2000:] + proc.err
    lines = proc.err.strip().splitlines()
    assert lines[-1].startswith(
        f"opsplay: bad input: no backup of database nosuchdb on {HOST} in /var/backups/postgresql;"
        " databases with backups: "
    ), proc.err
    assert "_globals" not in lines[-1]
    assert "nosuchdb_copy" not in databases("nosuchdb")
