"""plugins/modules/status_probe.py: what `opsplay status` is told about a host (no host needed)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.modules import status_probe

from .test_backup_manifest import make

UTC = datetime.UTC
AT = datetime.datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)


def test_backups_per_set_with_globals_ages_and_restore_tests(tmp_path):
    make(
        tmp_path,
        "shop",
        "20261124T020000Z",
        restore_test={"at": "2026-11-24T02:30:00Z", "ok": True},
    )
    make(tmp_path, "_globals", "20261124T015000Z", ext=".sql")
    found, error = status_probe.backups(str(tmp_path), AT)
    assert error is None
    assert found == {
        "_globals": {
            "newest_verified": "_globals_20261124T015000Z.sql",
            "newest_verified_age_seconds": 4200,
            "newest_verified_timestamp": int(AT.timestamp()) - 4200,
            "bad": 0,
            "last_restore_test_age_seconds": None,
            "last_restore_test_timestamp": None,
            "last_restore_test_ok": None,
        },
        "shop": {
            "newest_verified": "shop_20261124T020000Z.dump",
            "newest_verified_age_seconds": 3600,
            "newest_verified_timestamp": int(AT.timestamp()) - 3600,
            "bad": 0,
            "last_restore_test_age_seconds": 1800,
            "last_restore_test_timestamp": int(AT.timestamp()) - 1800,
            "last_restore_test_ok": True,
        },
    }


def test_a_truncated_newest_archive_is_not_the_newest_verified_backup(tmp_path):
    make(tmp_path, "shop", "20261123T020000Z")
    newest = make(tmp_path, "shop", "20261124T020000Z")
    with open(newest, "r+b") as handle:
        handle.truncate(5)
    found, _ = status_probe.backups(str(tmp_path), AT)
    assert found["shop"]["newest_verified"] == "shop_20261123T020000Z.dump"
    assert found["shop"]["newest_verified_age_seconds"] == 90000
    assert found["shop"]["bad"] == 1


def test_a_set_whose_backups_are_all_bad_is_missing_not_absent(tmp_path):
    Path(f"{make(tmp_path, 'shop', '20261124T020000Z')}.json").write_text("{")
    make(tmp_path, "_globals", "20261124T015000Z", ext=".sql").unlink()
    (tmp_path / "crm").mkdir()  # a directory with no backup at all
    found, _ = status_probe.backups(str(tmp_path), AT)
    assert sorted(found) == ["_globals", "crm", "shop"]
    assert [found[s]["newest_verified"] for s in sorted(found)] == [None, None, None]
    assert [found[s]["bad"] for s in sorted(found)] == [1, 0, 1]


def test_no_backup_dir_is_no_backups_and_no_error(tmp_path):
    assert status_probe.backups(str(tmp_path / "absent"), AT) == ({}, None)
    assert status_probe.backups("", AT) == ({}, None)


def test_an_unreadable_backup_dir_is_named(tmp_path):
    (tmp_path / "f").write_text("")
    found, error = status_probe.backups(str(tmp_path / "f" / "x"), AT)
    assert found == {} and error is None  # not a directory: nothing there
    (tmp_path / "shop").mkdir()
    os.chmod(tmp_path / "shop", 0)
    try:
        if os.access(tmp_path / "shop", os.R_OK):
            pytest.skip("running as root: permissions do not apply")
        found, error = status_probe.backups(str(tmp_path), AT)
        assert found == {} and error == f"{tmp_path / 'shop'}: Permission denied"
    finally:
        os.chmod(tmp_path / "shop", 0o700)


def test_certificates_days_left_and_errors(tmp_path):
    cert = tmp_path / "live" / "a" / "cert.pem"
    cert.parent.mkdir(parents=True)
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "40"),
            *("-subj", "/CN=status.test", "-keyout", str(cert.parent / "key.pem")),
            *("-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    broken = tmp_path / "live" / "b" / "cert.pem"
    broken.parent.mkdir()
    broken.write_text("not a certificate\n")
    now = AT.now(UTC)
    found = status_probe.certificates([str(tmp_path / "live" / "*" / "cert.pem")], now)
    assert found[str(cert)]["days_left"] == 39  # whole days, rounded down
    # notAfter as Unix time: 40 days after openssl signed it, a moment before `now`
    expires = found[str(cert)]["not_after_timestamp"]
    assert 0 <= now.timestamp() + 40 * 86400 - expires < 60
    assert str(broken) in found[str(broken)]["error"] and "\n" not in found[str(broken)]["error"]


def test_record_with_its_age_or_none(tmp_path):
    record = tmp_path / "security-updates.json"
    record.write_text(json.dumps({"pending_security": ["openssl"]}))
    os.utime(record, (1000, 1000))
    assert status_probe.read_record(str(record), 1060) == {
        "pending_security": ["openssl"],
        "recorded_age_seconds": 60,
        "recorded_timestamp": 1000,
    }
    record.write_text("[1]")
    assert status_probe.read_record(str(record), 1060) is None
    record.write_text("{")
    assert status_probe.read_record(str(record), 1060) is None
    assert status_probe.read_record(str(tmp_path / "absent"), 1060) is None


def test_reboot_required_and_its_packages(tmp_path):
    flag = tmp_path / "reboot-required"
    assert status_probe.reboot(str(flag)) == {"required": False, "packages": []}
    flag.write_text("*** System restart required ***\n")
    assert status_probe.reboot(str(flag)) == {"required": True, "packages": []}
    (tmp_path / "reboot-required.pkgs").write_text("linux-image-amd64\nlibc6\nlibc6\n\n")
    assert status_probe.reboot(str(flag)) == {
        "required": True,
        "packages": ["libc6", "linux-image-amd64"],
    }


def test_maintenance_window_from_the_flag(tmp_path):
    flag = tmp_path / "maintenance.flag"
    assert status_probe.maintenance(str(flag)) is None
    assert status_probe.maintenance("") is None
    flag.write_text(json.dumps({"time": "1970-01-01T00:01:40Z", "run_id": "r1", "reason": "x"}))
    assert status_probe.maintenance(str(flag)) == {
        "time": "1970-01-01T00:01:40Z",
        "since_epoch": 100,
        "run_id": "r1",
        "reason": "x",
        "scheduled": False,
    }
    flag.write_text(json.dumps({"time": "then", "run_id": ""}))
    window = status_probe.maintenance(str(flag))
    assert window["since_epoch"] is None and window["run_id"] is None
    flag.write_text("garbage")
    assert status_probe.maintenance(str(flag)) == {
        "time": None,
        "run_id": None,
        "reason": f"flag {flag} unreadable",
    }


def test_status_is_one_document(tmp_path):
    make(tmp_path / "b", "shop", "20261124T020000Z")
    params = {
        "backup_dir": str(tmp_path / "b"),
        "certificates": [],
        "security_record": "",
        "maintenance_flag": "",
    }
    doc = status_probe.status(params, AT)
    assert set(doc) == {
        "backups",
        "backups_error",
        "certificates",
        "security_updates",
        "reboot",
        "maintenance",
    }
    assert doc["backups"]["shop"]["newest_verified_age_seconds"] == 3600
    json.dumps(doc)  # what set_stats hands to the CLI


def test_stats_are_what_set_stats_handed_the_cli():
    found = {"backups": {}, "reboot": {"required": False, "packages": []}}
    assert status_probe.stats("db1", found) == {
        "data": {"status": {"db1": found}},
        "per_host": False,
        "aggregate": True,
    }
