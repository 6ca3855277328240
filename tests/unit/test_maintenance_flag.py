"""module_utils maintenance_flag: the one reader of the maintenance window's flag (used by
maintenance_mode_window, health_probe and status_probe)."""

from __future__ import annotations

from ansible_collections.opsplay.ops.plugins.module_utils import maintenance_flag


def test_no_flag_no_window(tmp_path):
    assert maintenance_flag.read(str(tmp_path / "maintenance.flag")) == (False, None)
    assert maintenance_flag.read("") == (False, None)


def test_a_readable_flag_is_the_windows_start_entry(tmp_path):
    flag = tmp_path / "maintenance.flag"
    flag.write_text('{"time": "2026-11-30T02:00:41Z", "run_id": "R", "reason": "weekly"}')
    assert maintenance_flag.read(str(flag)) == (
        True,
        {"time": "2026-11-30T02:00:41Z", "run_id": "R", "reason": "weekly"},
    )


def test_a_flag_that_cannot_be_read_is_still_an_open_window(tmp_path):
    flag = tmp_path / "maintenance.flag"
    for text in ("{not json", "[1, 2]", ""):
        flag.write_text(text)
        assert maintenance_flag.read(str(flag)) == (True, None), text
    flag.unlink()
    flag.mkdir()  # not a file: open() fails with another OSError than "missing"
    assert maintenance_flag.read(str(flag)) == (True, None)
