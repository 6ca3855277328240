"""main() of the remaining probe and report modules, in this process, on real files in tmp_path:
preflight_probe (real backups and manifests, the real disk), log_cleanup_probe (a real log
tree) and security_updates_report (the pending-updates record on disk). What main() adds to
the decisions their own unit tests cover: failing or not, bad input in one line, what is
written."""

from __future__ import annotations

import datetime
import json
import os

from ansible_collections.opsplay.ops.plugins.modules import log_cleanup_probe as cleanup
from ansible_collections.opsplay.ops.plugins.modules import preflight_probe as preflight
from ansible_collections.opsplay.ops.plugins.modules import security_updates_report as sur

from .module_harness import run_main
from .test_backup_manifest import make
from .test_log_cleanup_probe import plant
from .test_security_updates_report import params as report_params


def stamp(hours_ago):
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours_ago)
    return moment.strftime("%Y%m%dT%H%M%SZ")


# --- preflight_probe ---------------------------------------------------------------------------


def gates(tmp_path, **kw):
    base = {"step": "security updates", "db_host": True, "backup_dir": str(tmp_path)}
    return dict(base, **kw)


def test_preflight_passes_with_fresh_backups_and_room(tmp_path):
    make(tmp_path, "shop", stamp(1))
    disk = [{"path": str(tmp_path), "min_free_mb": 1}]
    rc, result = run_main(preflight, gates(tmp_path, databases=["shop"], disk=disk))
    assert rc == 0, result
    assert result["changed"] is False and result["problems"] == []
    assert result["msg"] == "gates passed for security updates: backup, disk, activity"
    assert result["backups"]["shop"]["name"].startswith("shop_")


def test_a_stale_backup_fails_the_host_unless_the_role_may_take_one(tmp_path):
    make(tmp_path, "shop", stamp(30))
    rc, result = run_main(preflight, gates(tmp_path))
    assert rc == 1 and result["backup_refused"] is True
    assert result["msg"].startswith("refused security updates: gate backup: shop newest verified")
    rc, result = run_main(preflight, gates(tmp_path, backup_take=True))
    assert rc == 0 and result["backup_refused"] is True  # the role takes a backup, asks again
    # a refusal of another gate is not deferred
    disk = [{"path": str(tmp_path / "gone"), "min_free_mb": 1}]
    rc, result = run_main(preflight, gates(tmp_path, backup_take=True, disk=disk, gates=["disk"]))
    assert rc == 1
    assert result["problems"] == [f"gate disk: {tmp_path / 'gone'}: No such file or directory"]


def test_a_backup_dir_that_cannot_be_listed_is_named(tmp_path, monkeypatch):
    """As a user that may not list it (these tests run as root, for whom permissions do not
    apply: the listing of that one directory is refused here)."""
    shop = tmp_path / "shop"
    make(tmp_path, "shop", stamp(1))
    real_listdir = os.listdir

    def refused(path):
        if str(path) == str(shop):
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", refused)
    rc, result = run_main(preflight, gates(tmp_path, gates=["backup"]))
    assert rc == 1
    assert result["problems"] == [f"gate backup: cannot read {shop}: Permission denied"]


def test_an_unknown_gate_is_one_line(tmp_path):
    rc, result = run_main(preflight, gates(tmp_path, gates=["backup", "dsik"]))
    assert rc == 1
    assert result["msg"] == "preflight_gates: unknown gate(s) dsik (known: backup, disk, activity)"
    assert "problems" not in result


# --- log_cleanup_probe -------------------------------------------------------------------------


def test_cleanup_plans_then_reports_what_it_deleted(tmp_path):
    logs = tmp_path / "log"
    old = plant(logs / "app.log.5.gz", days_old=40, size=2048)
    new = plant(logs / "app.log.1.gz", days_old=2)
    entries = [{"path": str(logs), "patterns": ["*.gz"]}]
    rc, planned = run_main(cleanup, {"entries": entries, "disk_paths": [str(tmp_path)]})
    assert rc == 0, planned
    assert [c["path"] for c in planned["candidates"]] == [str(old)]
    assert planned["count"] == 1 and planned["bytes"] == 2048 and planned["changed"] is False
    assert new.exists() and old.exists()  # the probe only decides; the role deletes
    old.unlink()
    rc, reported = run_main(cleanup, {"phase": "report", "plan": planned})
    assert rc == 0, reported
    assert reported["msg"].startswith("removed 1 file(s), freed 2.00 KB (2048 bytes); ")
    assert reported["msg"].endswith(f"; files: {old}")
    (disk,) = reported["disk"]
    assert reported["msg"].split("; ")[1].startswith(disk["mount"] + ": used ")


def test_cleanup_refuses_bad_input_in_one_line(tmp_path):
    entries = [{"path": "relative/log", "patterns": ["*.gz"], "age_days": 0}]
    rc, result = run_main(cleanup, {"entries": entries})
    assert rc == 1 and result["opsplay_bad_input"] is True
    assert "relative/log" in result["msg"] and "age_days" in result["msg"]
    assert "\n" not in result["msg"]


def test_an_unreadable_file_in_the_tree_is_skipped(tmp_path, monkeypatch):
    """A file that vanishes between the listing and its lstat (logrotate at work) is skipped."""
    logs = tmp_path / "log"
    plant(logs / "a.gz", days_old=40)
    gone = plant(logs / "b.gz", days_old=40)
    real_lstat = os.lstat

    def vanishing(path, *args, **kwargs):
        if str(path) == str(gone):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(cleanup.os, "lstat", vanishing)
    entry = {"path": str(logs), "recurse": False}
    assert [p for p, _ in cleanup.entry_files(entry)] == [str(logs / "a.gz")]


# --- security_updates_report -------------------------------------------------------------------


def test_the_report_writes_the_pending_record_once(tmp_path):
    record = tmp_path / "state" / "security-updates.json"
    args = dict(report_params(), record_path=str(record), host="web1")
    rc, result = run_main(sur, args)
    assert rc == 0, result
    assert result["changed"] is True and result["host_changed"] is False
    assert json.loads(record.read_text()) == result["record"]
    assert oct(record.stat().st_mode & 0o777) == "0o644"
    assert result["ansible_stats"]["data"]["security_updates"]["web1"] == result["report"]
    written = record.stat().st_ino  # a rewrite renames a new file into place
    rc, again = run_main(sur, args)
    assert rc == 0 and again["changed"] is False and record.stat().st_ino == written
    assert not [p for p in record.parent.iterdir() if p.name.startswith(".")]


def test_check_mode_writes_no_record(tmp_path):
    record = tmp_path / "state" / "security-updates.json"
    args = dict(report_params(), record_path=str(record), host="web1")
    rc, result = run_main(sur, args, check_mode=True)
    assert rc == 0 and result["changed"] is True and not record.parent.exists()


def test_a_record_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory goes\n")
    record = blocker / "security-updates.json"
    args = dict(report_params(), record_path=str(record), host="web1")
    rc, result = run_main(sur, args)
    assert rc == 1
    assert result["msg"] == f"cannot record the pending updates in {record}: File exists"
