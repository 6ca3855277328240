"""plugins/module_utils/disk_usage.py: one rule for a mount's usage (df's Use%, rounded up; free
space rounded down)."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import disk_usage


@pytest.mark.parametrize(
    ("used", "free", "percent"),
    [
        (0, 0, 0),  # no blocks at all
        (0, 100, 0),
        (50, 50, 50),  # exact: no rounding up past it
        (1, 99, 1),
        (1, 999, 1),  # 0.1 % is 1 %: rounding goes towards less room
        (9901, 99, 100),  # 99.01 % is 100 %, as df prints it
        (2, 1, 67),  # 66.67 %
        (100, 0, 100),
    ],
)
def test_percent_used_rounds_up(used, free, percent):
    assert disk_usage.percent_used(used, free) == percent


def test_free_mib_rounds_down():
    mib = 1024 * 1024
    assert disk_usage.free_mib(0) == 0
    assert disk_usage.free_mib(mib - 1) == 0
    assert disk_usage.free_mib(5 * mib + mib - 1) == 5


def test_usage_reads_statvfs(monkeypatch):
    # 1000 blocks of 4096 bytes: 300 free for root, 200 of them for users (100 reserved)
    fake = SimpleNamespace(f_blocks=1000, f_bfree=300, f_bavail=200, f_frsize=4096)
    monkeypatch.setattr(disk_usage.os, "statvfs", lambda path: fake)
    result = disk_usage.usage("/srv")
    assert result == {
        "path": "/srv",
        "size_bytes": 900 * 4096,
        "used_bytes": 700 * 4096,
        "free_bytes": 200 * 4096,
        "free_mib": 200 * 4096 // (1024 * 1024),
        "percent_used": 78,  # 700 / 900 = 77.8 % -> 78
    }


def test_usage_of_a_real_mount_agrees_with_shutil(tmp_path):
    # the mount is live (other processes write to it): its figures are read before and after,
    # and the module's must lie between them
    before, shutil_before = os.statvfs(tmp_path), shutil.disk_usage(tmp_path)
    result = disk_usage.usage(str(tmp_path))
    after, shutil_after = os.statvfs(tmp_path), shutil.disk_usage(tmp_path)

    def between(value, readings):
        return min(readings) <= value <= max(readings)

    assert between(result["free_bytes"], [st.f_bavail * st.f_frsize for st in (before, after)])
    used = [(st.f_blocks - st.f_bfree) * st.f_frsize for st in (before, after)]
    assert between(result["used_bytes"], used)
    assert between(result["free_bytes"], [shutil_before.free, shutil_after.free])
    assert result["free_bytes"] <= shutil_before.total
    assert 0 <= result["percent_used"] <= 100


def test_missing_path_is_an_error_entry(tmp_path):
    missing = str(tmp_path / "nope")
    assert disk_usage.usage_or_error(missing) == {
        "path": missing,
        "error": "No such file or directory",
    }
    with pytest.raises(OSError):
        disk_usage.usage(missing)
