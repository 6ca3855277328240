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
