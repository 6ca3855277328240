"""The pg_backup role's report of a backup run, its Prometheus textfile (module_utils
pg_backup_report, module pg_backup_report) and the one call that backs up, verifies and prunes
(pg_backup_dump's backup_and_check): the decisions the role made in Jinja before."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import pg_backup_report as rep
from ansible_collections.opsplay.ops.plugins.modules import pg_backup_report as module
from ansible_collections.opsplay.ops.plugins.modules.pg_backup_dump import Dump

from .test_pg_backup_crash import FAKE_DUMPALL, FakeModule

HOST = "backup-1"
BACKUP = {
    "changed": True,
    "msg": "backed up: shop_20250407T020000Z.dump; reused fresh backups: none",
    "verify": {"msg": "3 backups verified", "bad": []},
    "retention": {"msg": "deleted: nothing", "deleted": []},
}
PLAN = {"send": [{"name": "a"}, {"name": "b"}], "send_bytes": 3 * 1048576, "would_delete": ["c"]}
RECEIVE = {"promoted": ["a", "b"], "bytes": 1572864, "deleted": ["c"], "bad": [], "msg": "ok"}


def test_a_good_run_is_reported_in_one_line_as_before():
    problem, msg = rep.report(BACKUP, None, {"host": ""}, check_mode=False)
    assert problem == ""
    assert msg == (
        "backed up: shop_20250407T020000Z.dump; reused fresh backups: none; 3 backups verified;"
        " retention deleted: nothing; offsite: off"
    )


def test_skipped_or_absent_parts_say_so():
    backup = {"msg": "backed up: none; reused fresh backups: x", "verify": {"skipped": True}}
    problem, msg = rep.report(backup, {"skipped": True}, {"host": HOST}, check_mode=False)
    assert problem == ""
    assert msg == (
        "backed up: none; reused fresh backups: x; existing backups not re-verified;"
        " retention off; offsite: skipped"
    )


def test_a_bad_backup_fails_with_the_verification_message_whatever_else_happened():
    bad = dict(BACKUP, verify={"msg": "backup x is bad: checksum mismatch", "bad": [{"name": "x"}]})
    offsite = {"host": HOST, "plan": PLAN, "rsync": {"rc": 12, "stderr": "ssh: refused"}}
    assert rep.report(bad, None, offsite, False) == ("backup x is bad: checksum mismatch", "")


def test_the_off_host_copy_is_reported_copied_or_would_copy():
    offsite = {"host": HOST, "plan": PLAN, "rsync": {"rc": 0}, "receive": RECEIVE}
    retention = {"msg": "deleted: old_1.dump"}
    problem, msg = rep.report(BACKUP, retention, offsite, check_mode=False)
    assert problem == ""
    assert msg.endswith(
        "; retention deleted: old_1.dump; offsite: copied 2 (1.5 MB), pruned 1 on backup-1"
    )
    checked = {"host": HOST, "plan": PLAN, "rsync": {"skipped": True}, "receive": {"skipped": True}}
    assert rep.report(BACKUP, None, checked, check_mode=True)[1].endswith(
        "; offsite: would copy 2 (3.0 MB), would prune 1 on backup-1"
    )


@pytest.mark.parametrize(
    ("stderr", "rc", "said"),
    [
        ("rsync: write failed: No space left on device (28)\nrsync error: 11", 11,
         "disk full on backup-1 (No space left on device)"),
        ("Warning: x\nHost key verification failed.\nrsync: connection unexpectedly closed", 255,
         "Host key verification failed."),
        ("rsync: [sender] some problem\n", 23, "rsync: [sender] some problem"),
        ("", 5, "rsync exited with 5"),
    ],
)  # fmt: skip
def test_a_failed_rsync_names_its_first_meaningful_line(stderr, rc, said):
    offsite = {"host": HOST, "plan": PLAN, "rsync": {"rc": rc, "stderr": stderr}}
    problem, msg = rep.report(BACKUP, None, offsite, check_mode=False)
    assert msg == ""
    assert problem == (
        f"offsite copy to backup-1 failed: {said}; local backups made and verified, nothing new"
        " on backup-1"
    )


def test_copies_the_backup_host_refused_fail_the_host_and_earlier_copies_stay():
    refused = {"bad": ["a"], "promoted": [], "msg": "copy a does not match its checksum"}
    offsite = {"host": HOST, "plan": PLAN, "rsync": {"rc": 0}, "receive": refused}
    assert rep.report(BACKUP, None, offsite, False)[0] == (
        "offsite copy to backup-1 failed: copy a does not match its checksum;"
        " earlier copies untouched"
    )
    failed = {"failed": True, "msg": "disk full on x"}  # the module failed: no 'promoted'
    offsite["receive"] = failed
    assert rep.report(BACKUP, None, offsite, False)[0] == (
        "offsite copy to backup-1 failed: disk full on x; earlier copies untouched"
    )


def manifest(database, ended, good=True, size=10, test=None):
    return {
        "name": f"{database}_{ended.replace('-', '').replace(':', '')}.dump",
        "database": database,
        "started": ended,
        "ended": ended,
        "size_bytes": size,
        "duration_seconds": 1.5,
        "verified": {"ok": good, "problem": "" if good else "checksum mismatch"},
        "restore_test": test,
    }


def test_the_textfile_gives_the_newest_good_backup_counts_and_restore_tests():
    summary = rep.summary_of_manifests(
        [
            manifest("shop", "2025-04-07T01:00:00Z", size=5),
            manifest("shop", "2025-04-07T02:00:00Z", size=7,
                     test={"at": "2025-04-07T03:00:00Z", "ok": False}),
            manifest("shop", "2025-04-07T04:00:00Z", good=False, size=9),
            manifest("_globals", "2025-04-07T02:00:00Z", size=3),
            {"name": "broken", "database": "blog", "unreadable": "not JSON"},
        ]
    )  # fmt: skip
    assert rep.prom_text(summary) == (
        "# Managed by opsplay (pg_backup role): rewritten by every backup run.\n"
        "# HELP opsplay_pg_backup_last_success_timestamp_seconds End time of the newest verified"
        " backup.\n"
        "# TYPE opsplay_pg_backup_last_success_timestamp_seconds gauge\n"
        'opsplay_pg_backup_last_success_timestamp_seconds{database="_globals"} 1743991200\n'
        'opsplay_pg_backup_last_success_timestamp_seconds{database="shop"} 1743991200\n'
        "# HELP opsplay_pg_backup_last_size_bytes Size of the newest verified backup.\n"
        "# TYPE opsplay_pg_backup_last_size_bytes gauge\n"
        'opsplay_pg_backup_last_size_bytes{database="_globals"} 3\n'
        'opsplay_pg_backup_last_size_bytes{database="shop"} 7\n'
        "# HELP opsplay_pg_backup_last_duration_seconds Duration of the newest verified backup"
        " (dump, verify, checksum).\n"
        "# TYPE opsplay_pg_backup_last_duration_seconds gauge\n"
        'opsplay_pg_backup_last_duration_seconds{database="_globals"} 1.5\n'
        'opsplay_pg_backup_last_duration_seconds{database="shop"} 1.5\n'
        "# HELP opsplay_pg_backup_backups Backups on disk, by state (good: verified; bad: failed"
        " verification).\n"
        "# TYPE opsplay_pg_backup_backups gauge\n"
        'opsplay_pg_backup_backups{database="_globals",state="good"} 1\n'
        'opsplay_pg_backup_backups{database="_globals",state="bad"} 0\n'
        'opsplay_pg_backup_backups{database="blog",state="good"} 0\n'
        'opsplay_pg_backup_backups{database="blog",state="bad"} 1\n'
        'opsplay_pg_backup_backups{database="shop",state="good"} 2\n'
        'opsplay_pg_backup_backups{database="shop",state="bad"} 1\n'
        "# HELP opsplay_pg_backup_restore_test_timestamp_seconds Time of the last restore test.\n"
        "# TYPE opsplay_pg_backup_restore_test_timestamp_seconds gauge\n"
        'opsplay_pg_backup_restore_test_timestamp_seconds{database="shop"} 1743994800\n'
        "# HELP opsplay_pg_backup_restore_test_success Whether the last restore test passed (1) or"
        " failed (0).\n"
        "# TYPE opsplay_pg_backup_restore_test_success gauge\n"
        'opsplay_pg_backup_restore_test_success{database="shop"} 0\n'
    )


def write_backup(root: Path, m: dict) -> None:
    folder = root / m["database"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / m["name"]).write_text("archive")
    (folder / (m["name"] + ".json")).write_text(json.dumps(m))


def test_the_textfile_is_replaced_only_when_it_changes_and_not_in_check_mode(tmp_path):
    root, metrics = tmp_path / "backups", tmp_path / "textfile"
    write_backup(root, manifest("shop", "2025-04-07T01:00:00Z"))
    params = {"backup_dir": str(root), "databases": [], "metrics_dir": str(metrics)}
    assert module.write_metrics(params, check_mode=True) == (True, str(metrics / "pg_backup.prom"))
    assert not metrics.exists()
    assert module.write_metrics(params, check_mode=False)[0] is True
    prom = metrics / "pg_backup.prom"
    assert oct(prom.stat().st_mode & 0o777) == "0o644"
    assert 'opsplay_pg_backup_backups{database="shop",state="good"} 1\n' in prom.read_text()
    assert os.listdir(metrics) == ["pg_backup.prom"]  # no temporary file left
    assert module.write_metrics(params, check_mode=False)[0] is False
    write_backup(root, manifest("shop", "2025-04-07T02:00:00Z"))
    assert module.write_metrics(params, check_mode=True)[0] is True
    assert 'state="good"} 1\n' in prom.read_text()  # check mode wrote nothing
    assert module.write_metrics(params, check_mode=False)[0] is True
    assert 'opsplay_pg_backup_backups{database="shop",state="good"} 2\n' in prom.read_text()


# -- pg_backup_dump: dump, verify every backup, prune, in one call ---------------------------
@pytest.fixture
def dump(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "pg_dumpall"
    tool.write_text(FAKE_DUMPALL)
    tool.chmod(0o755)
    fake = FakeModule(tmp_path / "backups", bin_dir)
    fake.params.update(
        globals=True, reuse_newer_than=0, row_counts=False, verify_existing=True, reverify_newest=1,
        compress="", compress_method="gzip", compress_level=-1,
        offsite_candidates=True, lock_wait_timeout="1s", jobs=1, identity="", identity_file="",
        retention={"keep_last": 1, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0},
    )  # fmt: skip
    monkeypatch.setattr(Dump, "server", lambda self: ("15.6", []))
    return Dump(fake)


def globals_backups(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "_globals").glob("*.sql"))


def test_one_call_backs_up_verifies_and_prunes(dump, monkeypatch):
    first = dump.backup_and_check()
    root = Path(dump.root)
    assert first["verify"]["msg"] == "0 backups verified"  # verified once, as it was written
    assert first["retention"]["deleted"] == []
    assert [c["name"] for c in first["offsite_candidates"]] == globals_backups(root)
    second = dump.backup_and_check()
    # the earlier one, not the new one again
    assert [v["name"] for v in second["verify"]["verified"]] == [first["backups"][0]["name"]]
    assert second["retention"]["deleted"] == [first["backups"][0]["name"]]
    assert globals_backups(root) == [second["backups"][0]["name"]]


def test_a_bad_backup_found_in_the_same_call_stops_its_retention(dump):
    first = dump.backup_and_check()["backups"][0]
    with open(first["path"], "a", encoding="utf-8") as handle:
        handle.write("-- changed after its checksum\n")
    result = dump.backup_and_check()
    assert [b["name"] for b in result["verify"]["bad"]] == [first["name"]]
    assert "retention" not in result
    assert globals_backups(Path(dump.root)) == sorted([first["name"], result["backups"][0]["name"]])
    assert [c["name"] for c in result["offsite_candidates"]] == [result["backups"][0]["name"]]


def test_the_textfile_parses_with_one_opsplay_prefix_help_and_type():
    """What node_exporter reads of the host's textfile: prometheus_client's parser accepts it,
    every metric has HELP and TYPE and opsplay's prefix (no pg_ name to collide with
    postgres_exporter's), and values are exact."""
    from prometheus_client.parser import text_string_to_metric_families

    summary = rep.summary_of_manifests(
        [manifest("shop", "2025-04-07T02:00:00Z", size=7_340_032_123)]
    )
    families = list(text_string_to_metric_families(rep.prom_text(summary)))
    assert families
    for family in families:
        assert family.name.startswith("opsplay_pg_backup_"), family.name
        assert family.documentation and family.type == "gauge", family.name
    values = {(s.name, s.labels.get("database")): s.value for f in families for s in f.samples}
    assert values[("opsplay_pg_backup_last_size_bytes", "shop")] == 7_340_032_123
    assert values[("opsplay_pg_backup_last_success_timestamp_seconds", "shop")] == 1743991200
