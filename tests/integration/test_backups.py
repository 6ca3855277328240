"""opsplay backups against the lab: real backups, listed and judged, read-only and lock-free."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from opsplay.errors import ExitCode
from opsplay.lock import environment_lock

HOSTS = ("opsplay-lab-1", "opsplay-lab-2")


def on_host(host: str, *argv: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, *argv], capture_output=True, text=True, check=True
    ).stdout


def test_backups_lists_real_backups_and_warns_when_too_old(run_opsplay):
    backup = run_opsplay("run", "backup", "--env", "lab", "--yes", "--json")
    assert backup.code == ExitCode.OK, backup.out[-2000:] + backup.err
    tested = run_opsplay(
        "run", "restore-test", "--env", "lab", "--limit", HOSTS[0], "--yes", "--json"
    )
    assert tested.code == ExitCode.OK, tested.out[-2000:] + tested.err

    # The listing takes no lock: it answers while another run holds the environment.
    with environment_lock(run_opsplay.state, "lab", "a long backup"):
        listed = run_opsplay("backups", "--env", "lab", "--json")
    assert listed.code == ExitCode.OK, listed.out[-2000:] + listed.err
    assert "warning" not in listed.err
    summary = json.loads(listed.out)
    assert summary["env"] == "lab" and summary["problems"] == [] and summary["failed_hosts"] == {}
    for host in HOSTS:
        databases = summary["hosts"][host]["databases"]
        assert {"postgres", "_globals"} <= set(databases), databases.keys()
        for name in ("postgres", "_globals"):
            db = databases[name]
            newest = db["newest"]
            assert db["status"] == "ok" and db["count"] >= 1 and db["good"] == db["count"]
            assert newest["name"] == db["newest_good"]["name"]
            assert newest["verified"]["ok"] is True
            assert 0 <= db["newest_age_seconds"] < 900
            # what the listing says is what is on the host: the archive and its manifest
            manifest = json.loads(on_host(host, "cat", newest["path"] + ".json"))
            assert manifest["size_bytes"] == newest["size_bytes"] > 0
            assert manifest["sha256"] == newest["sha256"]
            size = int(on_host(host, "stat", "-c", "%s", newest["path"]))
            assert size == newest["size_bytes"]
    # restore-tested on the first host only, and recorded there
    test = summary["hosts"][HOSTS[0]]["databases"]["postgres"]["last_restore_test"]
    assert test["ok"] is True and 0 <= test["age_seconds"] < 900
    assert summary["hosts"][HOSTS[1]]["databases"]["postgres"]["last_restore_test"] is None
    # the listing is kept with its run in the history
    run_dir = run_opsplay.state / "runs" / summary["run"]["id"]
    assert json.loads((run_dir / "backups.json").read_text())["env"] == "lab"

    # The table (no terminal: plain text) names every host, database and newest backup.
    table = run_opsplay("backups", "--env", "lab")
    assert table.code == ExitCode.OK, table.err
    for host in HOSTS:
        postgres = summary["hosts"][host]["databases"]["postgres"]
        line = next(li for li in table.out.splitlines() if li.startswith(f"{host}  postgres"))
        assert postgres["newest"]["name"] in line and " ok " in line
        assert ("ok " if host == HOSTS[0] else "never") in line.split(" ok ", 1)[1]

    # A threshold the backups cannot meet: one warning per database, exit 3, same listing.
    stale = run_opsplay("backups", "--env", "lab", "--json", env={"OPSPLAY_BACKUP_MAX_AGE": "1s"})
    assert stale.code == ExitCode.HOSTS_FAILED, stale.err
    warnings = [li for li in stale.err.splitlines() if li.startswith("opsplay: warning: ")]
    expected = {(h, d) for h in HOSTS for d in summary["hosts"][h]["databases"]}
    assert len(warnings) == len(expected), stale.err
    pattern = re.compile(r"opsplay: warning: (\S+) (\S+): newest good backup is \S+ old \(max 1s\)")
    assert {pattern.match(w).groups() for w in warnings} == expected
    assert {(p["host"], p["database"]) for p in json.loads(stale.out)["problems"]} == expected


def test_a_host_without_listing_is_named_and_the_others_listed(
    run_opsplay, lab_inventories, tmp_path
):
    """An environment with a lab host and a host that does not exist (its connection fails)."""
    root = tmp_path / "inventories"
    shutil.copytree(lab_inventories / "lab", root / "mixed")
    (root / "mixed" / "hosts.yml").write_text(
        "all:\n  children:\n    db_servers:\n      hosts:\n"
        "        opsplay-lab-1:\n        opsplay-gone-1:\n"
    )
    listed = run_opsplay("backups", "--env", "mixed", env={"OPSPLAY_INVENTORY_DIR": str(root)})
    assert listed.code in (ExitCode.HOSTS_FAILED, ExitCode.HOSTS_UNREACHABLE), listed.err
    assert re.search(r"^opsplay: opsplay-gone-1: \S", listed.err, re.M), listed.err
    assert re.search(r"^opsplay-lab-1\s+postgres\s", listed.out, re.M), listed.out
    assert "opsplay-gone-1" not in listed.out


def _newest(listing, host: str, database: str) -> dict:
    return listing["hosts"][host]["databases"][database]


def test_a_changed_archive_is_bad_at_once_by_size_and_with_verify_by_checksum(run_opsplay):
    """Truncated, changed in place, deleted: what `opsplay backups` says without a new backup.

    The size check runs every time; a byte changed in place keeps the size, so only --verify
    (every archive read against its checksum) finds it. The backups' files are put back (or
    dropped with the test database) afterwards: the lab keeps its good backups.
    """
    host, db = HOSTS[0], "opsplay_changed_archive"
    psql = ("runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-qAt", "-c")
    on_host(host, *psql, f"DROP DATABASE IF EXISTS {db}")
    on_host(host, *psql, f"CREATE DATABASE {db}")
    on_host(
        host,
        *psql[:-1],
        "-d",
        db,
        "-c",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    )
    try:
        backup = run_opsplay("run", "backup", "--env", "lab", "--limit", host, "--yes")
        assert backup.code == ExitCode.OK, backup.out[-2000:] + backup.err
        listed = run_opsplay("backups", "--env", "lab", "--limit", host, "--json")
        assert listed.code == ExitCode.OK, listed.err
        entry = _newest(json.loads(listed.out), host, db)
        assert entry["status"] == "ok" and entry["count"] == 1, entry
        path, size = entry["newest"]["path"], entry["newest"]["size_bytes"]
        name = entry["newest"]["name"]
        assert int(on_host(host, "stat", "-c", "%s", path)) == size > 4096
        on_host(host, "cp", "-p", path, "/root/opsplay-archive.orig")

        # 1. Truncated: bad at once, with both sizes; the database has no good backup: exit 3.
        on_host(host, "truncate", "-s", str(size // 2), path)
        truncated = f"truncated: {size // 2} of {size} bytes"
        listed = run_opsplay("backups", "--env", "lab", "--limit", host, "--json")
        assert listed.code == ExitCode.HOSTS_FAILED, listed.err
        summary = json.loads(listed.out)
        entry = _newest(summary, host, db)
        assert entry["status"] == "missing" and entry["good"] == 0, entry
        assert entry["newest"]["on_disk"] == {"ok": False, "problem": truncated, "checked": "size"}
        assert entry["newest_problem"] == truncated
        assert summary["problems"] == [
            {
                "host": host,
                "database": db,
                "status": "missing",
                "why": f"no good backup (1 bad; newest {name}: {truncated})",
            }
        ]
        assert f"opsplay: warning: {host} {db}: no good backup (1 bad; newest {name}: " in (
            listed.err
        )
        table = run_opsplay("backups", "--env", "lab", "--limit", host)
        assert table.code == ExitCode.HOSTS_FAILED, table.err
        row = next(li for li in table.out.splitlines() if li.split()[:2] == [host, db])
        assert f"BAD: {truncated}" in row and row.split()[-1] == "MISSING", row

        # 2. One byte changed in place (same size): the size check cannot see it (documented);
        #    --verify reads the archive against its checksum and can.
        on_host(host, "cp", "-p", "/root/opsplay-archive.orig", path)
        flip = (
            "import sys; f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); "
            "b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xFF])); f.close()"
        )
        on_host(host, "python3", "-c", flip, path, str(size // 2))
        assert int(on_host(host, "stat", "-c", "%s", path)) == size
        plain = run_opsplay("backups", "--env", "lab", "--limit", host, "--json")
        assert plain.code == ExitCode.OK, plain.err
        entry = _newest(json.loads(plain.out), host, db)
        assert entry["status"] == "ok" and entry["newest"]["on_disk"]["checked"] == "size"
        verified = run_opsplay("backups", "--env", "lab", "--limit", host, "--json", "--verify")
        assert verified.code == ExitCode.HOSTS_FAILED, verified.err
        summary = json.loads(verified.out)
        entry = _newest(summary, host, db)
        mismatch = f"checksum mismatch ({name})"
        assert entry["status"] == "missing" and entry["newest_problem"] == mismatch, entry
        assert entry["newest"]["on_disk"]["checked"] == "checksums"
        assert [p["database"] for p in summary["problems"]] == [db], summary["problems"]
        # every other backup of the host passed the same checksum comparison
        others = [d for n, d in summary["hosts"][host]["databases"].items() if n != db]
        assert others and all(d["newest"]["on_disk"]["ok"] for d in others), others
        # nothing was recorded: the manifest still says verified, the next listing reads it so
        manifest = json.loads(on_host(host, "cat", path + ".json"))
        assert manifest["verified"]["ok"] is True

        # 3. Deleted: the manifest alone is not a backup.
        on_host(host, "rm", path)
        gone = run_opsplay("backups", "--env", "lab", "--limit", host, "--json")
        assert gone.code == ExitCode.HOSTS_FAILED, gone.err
        assert _newest(json.loads(gone.out), host, db)["newest_problem"] == "archive missing"
    finally:
        on_host(host, "rm", "-f", "/root/opsplay-archive.orig")
        on_host(host, "rm", "-rf", f"/var/backups/postgresql/{db}")
        on_host(host, *psql, f"DROP DATABASE IF EXISTS {db}")
