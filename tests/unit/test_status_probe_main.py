"""plugins/modules/status_probe.py main() in this process, on real backups, a real certificate
and a real maintenance flag in tmp_path: one read-only document per host, handed to the run's
stats under status.HOST only when the host is named; a backup directory it may not list is
named in the document, not a failure."""

from __future__ import annotations

import datetime
import json
import os

from ansible_collections.opsplay.ops.plugins.modules import status_probe

from .module_harness import run_main
from .test_backup_manifest import make
from .test_cert_renewal_module import make_cert


def stamp(hours_ago):
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours_ago)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def test_the_read_out_is_handed_to_the_run_stats_under_the_host(tmp_path):
    make(tmp_path / "backups", "shop", stamp(2))
    cert = make_cert(tmp_path / "certs", "www", days=40, san="DNS:www.test")
    flag = tmp_path / "maintenance.flag"
    flag.write_text(json.dumps({"time": "2026-11-30T03:00:00Z", "run_id": "r1", "reason": "x"}))
    args = {
        "host": "db1",
        "backup_dir": str(tmp_path / "backups"),
        "certificates": [str(cert)],
        "maintenance_flag": str(flag),
    }
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc, result = run_main(status_probe, args)
    assert rc == 0, result
    assert result["changed"] is False
    found = result["status"]
    shop = found["backups"]["shop"]
    assert shop["newest_verified"].startswith("shop_") and shop["bad"] == 0
    assert 7190 <= shop["newest_verified_age_seconds"] <= 7300
    assert list(found["certificates"]) == [str(cert)]
    assert found["certificates"][str(cert)]["days_left"] == 39  # 39.99 days: rounded down
    assert found["maintenance"]["run_id"] == "r1" and found["backups_error"] is None
    assert result["ansible_stats"] == {
        "data": {"status": {"db1": found}},
        "per_host": False,
        "aggregate": True,
    }
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # read-only
    rc, anonymous = run_main(status_probe, dict(args, host=""))
    assert rc == 0 and "ansible_stats" not in anonymous


def test_a_backup_directory_it_may_not_list_is_named(tmp_path, monkeypatch):
    """As a user that may not list it (these tests run as root: the refusal is simulated)."""
    make(tmp_path, "shop", stamp(2))
    real_listdir = os.listdir

    def refused(path):
        if str(path) == str(tmp_path / "shop"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", refused)
    rc, result = run_main(status_probe, {"backup_dir": str(tmp_path)})
    assert rc == 0, result
    assert result["status"]["backups"] == {}
    assert result["status"]["backups_error"] == f"{tmp_path / 'shop'}: Permission denied"
