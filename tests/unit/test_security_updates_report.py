"""opsplay.ops.security_updates_report: what a security-updates run did and left pending
(decisions that were Jinja in roles/security_updates/vars/main.yml)."""

from __future__ import annotations

import json

from ansible.plugins.filter.core import to_nice_json
from ansible_collections.opsplay.ops.plugins.modules import security_updates_report as report

OPENSSL = {"name": "openssl", "from": "3.0.14", "to": "3.0.15"}


def plan(**over):
    base = {
        "upgrades": [OPENSSL],
        "installed": {"openssl": "3.0.14", "bash": "5.2"},
        "pending_security": [{"name": "openssl"}],
        "pending_other": [{"name": "vim"}, {"name": "curl"}],
        "held": [],
        "blocked": [],
        "reboot_required": False,
        "reboot_packages": [],
        "outdated_services": [],
    }
    return {**base, **over}


def params(**over):
    base = {
        "before": plan(),
        "after": {"skipped": True, "changed": False},
        "recover": {"recovered": [], "waited": 0.0},
        "restarted": {"skipped": True, "results": []},
        "rebooted": {"skipped": True, "changed": False},
        "mode": "security",
        "reboot": False,
    }
    return {**base, **over}


def test_check_mode_reports_what_would_be_upgraded():
    got, record = report.build(params(), check=True)
    assert got["upgraded"] == [OPENSSL]
    assert got["summary"] == (
        "would upgrade 1: openssl 3.0.14 -> 3.0.15; non-security updates pending: 2"
    )
    assert record["pending_security"] == ["openssl"] and record["pending_other_count"] == 2


def test_an_upgrade_is_read_from_the_inspection_after_it():
    after = plan(
        upgrades=[],
        installed={"openssl": "3.0.15", "bash": "5.2"},
        pending_security=[],
        reboot_required=True,
        reboot_packages=["libc6"],
        outdated_services=["nginx.service", "cron.service"],
    )
    restarted = {"results": [{"item": "nginx.service", "changed": True}]}
    got, record = report.build(params(after=after, restarted=restarted), check=False)
    assert got["upgraded"] == [OPENSSL]
    assert got["restarted_services"] == ["nginx.service"]
    assert got["outdated_services"] == ["cron.service"] == record["outdated_services"]
    assert record["pending_security"] == [] and record["reboot_required"] is True
    assert got["summary"] == (
        "upgraded 1: openssl 3.0.14 -> 3.0.15; non-security updates pending: 2; "
        "REBOOT REQUIRED by libc6 (not rebooted: security_updates_reboot is false); "
        "restarted (were running replaced libraries): nginx.service; "
        "services running replaced libraries: cron.service"
    )


def test_nothing_to_do_held_refused_recovered_and_rebooted():
    before = plan(
        upgrades=[],
        held=["postgresql-15"],
        blocked=[{"name": "libpq5", "to": "15.9", "reason": "would change held postgresql-15"}],
        reboot_required=True,
        reboot_packages=[],
    )
    got, record = report.build(
        params(
            before=before,
            mode="all",
            reboot=True,
            rebooted={"changed": True, "rebooted": True},
            recover={"recovered": ["tzdata"], "waited": 2.5},
        ),
        check=False,
    )
    assert got["upgraded"] == [] and got["rebooted"] is True and got["lock_waited_seconds"] == 2.5
    assert record["refused"] == ["libpq5"] and record["held"] == ["postgresql-15"]
    # mode all: other updates are not "pending non-security" news
    assert got["summary"] == (
        "upgraded 0; held: postgresql-15; refused libpq5 15.9: would change held postgresql-15; "
        "recovered interrupted dpkg: tzdata; REBOOT REQUIRED (rebooted)"
    )


def test_the_record_is_written_once_in_the_roles_former_format(tmp_path):
    _, record = report.build(params(), check=False)
    text = json.dumps(record, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"
    assert text == to_nice_json(record) + "\n"  # what the role's copy task wrote
    path = tmp_path / "status" / "security-updates.json"
    assert report.write_record(str(path), text, check=True) is True and not path.exists()
    assert report.write_record(str(path), text, check=False) is True
    assert path.read_text() == text and oct(path.stat().st_mode & 0o777) == "0o644"
    assert report.write_record(str(path), text, check=False) is False  # unchanged: no change
    assert [p.name for p in path.parent.iterdir()] == ["security-updates.json"]


def test_the_host_changed_only_when_something_was_done_to_it():
    after = plan(upgrades=[], installed={"openssl": "3.0.15", "bash": "5.2"})
    upgraded, _ = report.build(params(after=after), check=False)
    assert report.host_changed(upgraded) is True
    nothing, _ = report.build(params(before=plan(upgrades=[])), check=False)
    assert report.host_changed(nothing) is False
    would, _ = report.build(params(), check=True)  # --check: would upgrade, changed nothing
    assert would["upgraded"] and report.host_changed(would) is False
    rebooted, _ = report.build(
        params(before=plan(upgrades=[]), rebooted={"changed": True}), check=False
    )
    assert report.host_changed(rebooted) is True


def test_a_previous_runs_upgrade_results_are_ignored_when_the_plan_had_nothing_to_do():
    """upgrade.yml is one include skipped when the plan has nothing to do (act false): the
    registered results of an earlier run of the role in the same play must not count."""
    stale_after = plan(upgrades=[], installed={"openssl": "3.0.99", "bash": "5.2"})
    got, _ = report.build(
        params(
            before=plan(upgrades=[], act=False),
            after=stale_after,
            restarted={"results": [{"item": "nginx.service", "changed": True}]},
            rebooted={"changed": True, "rebooted": True},
        ),
        check=False,
    )
    assert got["upgraded"] == [] and got["restarted_services"] == [] and not got["rebooted"]
    assert not report.host_changed(got)
