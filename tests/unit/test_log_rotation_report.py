"""opsplay.ops.log_rotation_report and the disk report it shares with log_cleanup
(module_utils disk_usage.filesystems / before_after): decisions that were Jinja in
roles/log_rotation/vars/main.yml."""

from __future__ import annotations

import os

from ansible_collections.opsplay.ops.plugins.module_utils import disk_usage
from ansible_collections.opsplay.ops.plugins.modules import log_rotation_report as report


def test_only_sets_with_an_exit_status_were_rejected_each_named_with_logrotates_error():
    install = {
        "results": [
            {"item": {"name": "nginx"}, "changed": False},
            {
                "item": {"name": "app"},
                "exit_status": 1,
                "stderr": "error: app:3 unknown option 'rotatee'\n\nerror: found error in app\n",
            },
            {"item": {"name": "web"}, "exit_status": 1, "stderr": "error: duplicate log entry"},
        ]
    }
    assert report.rejected(install, "/etc/logrotate.d/") == [
        "log set 'app' rejected by logrotate, /etc/logrotate.d/app left unchanged: "
        "error: app:3 unknown option 'rotatee'; error: found error in app",
        "log set 'web' rejected by logrotate, /etc/logrotate.d/web left unchanged: "
        "error: duplicate log entry",
    ]
    assert report.rejected({}, "/etc/logrotate.d") == []  # no set declared: nothing installed


def test_one_line_per_filesystem_before_and_after():
    before = [{"mount": "/", "used": 2 * 1024**3, "free": 1024**3, "percent": 67}]
    after = [{"mount": "/", "used": 1024**3, "free": 2 * 1024**3, "percent": 34}]
    assert disk_usage.before_after(before, after) == [
        "/: used 2.00 GB (67%) before, 1.00 GB (34%) after, 2.00 GB free"
    ]
    # a filesystem gone after keeps its numbers; one new after is not reported
    assert disk_usage.before_after(before, []) == [
        "/: used 2.00 GB (67%) before, 2.00 GB (67%) after, 1.00 GB free"
    ]


def test_filesystems_are_measured_once_each_and_missing_paths_skipped(tmp_path):
    (tmp_path / "a").mkdir()
    found = disk_usage.filesystems([str(tmp_path / "a"), str(tmp_path), "/nonexistent/x"])
    assert len(found) == 1  # both paths on one filesystem
    (disk,) = found
    assert os.path.ismount(disk["mount"]) and str(tmp_path).startswith(disk["mount"])
    assert disk["used"] >= 0 and disk["free"] >= 0 and 0 <= disk["percent"] <= 100


def test_rotate_now_only_when_forced_and_nothing_was_rejected():
    """The skip condition of the former 'Rotate the managed log sets now' task."""
    present = [{"name": "nginx"}, {"name": "app"}]
    assert report.to_rotate(True, present, "/etc/logrotate.d", []) == [
        "/etc/logrotate.d/nginx",
        "/etc/logrotate.d/app",
    ]
    assert report.to_rotate(False, present, "/etc/logrotate.d", []) == []
    assert report.to_rotate(True, present, "/etc/logrotate.d", ["log set 'app' rejected"]) == []
    assert report.to_rotate(True, [], "/etc/logrotate.d", []) == []


def test_a_failing_rotation_is_one_line_with_logrotates_last_words(tmp_path, monkeypatch):
    """A real logrotate stand-in on PATH: exit status and the last stderr lines, not a traceback."""
    fake = tmp_path / "logrotate"
    fake.write_text(
        '#!/bin/sh\necho "$@" > "$0.args"\necho \'error: stat of x failed\' >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert report.rotate(["/etc/logrotate.d/app"]) == (
        "logrotate -f failed (exit 1): error: stat of x failed"
    )
    assert (tmp_path / "logrotate.args").read_text() == "-f /etc/logrotate.d/app\n"
    fake.write_text("#!/bin/sh\nexit 0\n")
    assert report.rotate(["/etc/logrotate.d/app"]) is None
