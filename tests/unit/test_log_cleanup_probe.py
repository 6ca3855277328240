"""plugins/modules/log_cleanup_probe.py: what log_cleanup deletes, decided on a real directory
tree in tmp_path (no host): input checks, symlink refusal, age/pattern/exclude selection,
batches and the summary's wording."""

from __future__ import annotations

import os
import time

import pytest
from ansible_collections.opsplay.ops.plugins.modules import log_cleanup_probe as lc

DAY = 86400


def plant(path, *, days_old, size=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    moment = time.time() - days_old * DAY
    os.utime(path, (moment, moment))
    return path


def params(entries, **extra):
    return {"entries": entries, "age_days": 30, "disk_paths": [], "batch_size": 500, **extra}


def test_input_problems_name_every_entry():
    entries = lc.normalise(
        [
            {"path": "var/log", "patterns": ["*"]},
            {"path": "/", "patterns": ["*"]},
            {"path": "/var/log/../etc", "patterns": ["*"]},
            {"path": "/var/log/app", "patterns": [], "age_days": 0},
            {"path": "/var/log/ok/", "patterns": ["*.gz"], "age_days": None},
        ],
        30,
    )
    assert entries[-1]["path"] == "/var/log/ok" and entries[-1]["age_days"] == 30
    assert lc.input_problems(entries) == [
        "path 'var/log' must be an absolute directory other than / without . or .. components",
        "path '/' must be an absolute directory other than / without . or .. components",
        "path '/var/log/../etc' must be an absolute directory other than / without . or .. "
        "components",
        "path '/var/log/app' has no patterns",
        "path '/var/log/app': age_days must be a whole number of days, at least 1 (got 0)",
    ]


def test_bad_input_is_refused_before_anything_is_read(tmp_path):
    result, refusal = lc.plan(params([{"path": "relative", "patterns": ["*"]}]), False)
    assert result is None
    assert refusal == (
        "path 'relative' must be an absolute directory other than / without . or .. components"
    )


def test_a_symlinked_directory_is_refused_naming_where_it_leads(tmp_path):
    real = tmp_path / "outside"
    plant(real / "keep.log.1", days_old=40)
    plant(real / "sub" / "keep.log.2", days_old=40)
    (tmp_path / "logs").symlink_to(real)
    result, refusal = lc.plan(
        params(
            [
                {"path": str(tmp_path / "logs"), "patterns": ["*"]},
                {"path": str(tmp_path / "logs" / "sub"), "patterns": ["*"]},  # under a symlink
            ]
        ),
        False,
    )
    assert result is None
    assert refusal == (
        "refusing to clean directories reached through a symlink (declare the real path): "
        f"{tmp_path}/logs -> {real}, {tmp_path}/logs/sub -> {real}/sub"
    )
    assert (real / "keep.log.1").exists()


def test_selects_old_matching_regular_files_only(tmp_path):
    logs, outside = tmp_path / "logs", tmp_path / "outside"
    old = [
        plant(logs / "api.log.1", days_old=40, size=1000),
        plant(logs / "api.log.2.gz", days_old=31, size=1000),
        plant(logs / ".hidden.log.1", days_old=40, size=10),
        plant(logs / "sub" / "worker.log.3", days_old=40, size=1000),
    ]
    plant(logs / "api.log.0", days_old=29)  # too young
    plant(logs / "api.log", days_old=40)  # no pattern matches
    plant(logs / "keep.log.1", days_old=40)  # excluded
    plant(outside / "out.log.1", days_old=40)
    plant(outside / "dir" / "out.log.2", days_old=40)
    (logs / "link.log.1").symlink_to(outside / "out.log.1")  # a symlink: never listed
    (logs / "linkdir").symlink_to(outside / "dir")  # not entered
    entry = {
        "path": str(logs),
        "patterns": ["*.log.*"],
        "excludes": ["keep.*"],
        "recurse": True,
    }
    result, refusal = lc.plan(params([entry]), True)
    assert refusal is None
    assert result["candidates"] == [
        {"path": str(path), "size": path.stat().st_size} for path in sorted(old)
    ]
    assert result["count"] == 4 and result["bytes"] == 3010
    assert result["msg"].startswith("would remove 4 file(s), 2.94 KB (3010 bytes): ")

    flat, _ = lc.plan(params([dict(entry, recurse=False)]), False)
    assert str(logs / "sub" / "worker.log.3") not in [c["path"] for c in flat["candidates"]]
    assert flat["msg"].startswith("removing 3 file(s)")


def test_age_is_whole_days_of_mtime(tmp_path):
    logs = tmp_path / "logs"
    plant(logs / "a.log", days_old=6.99)
    plant(logs / "b.log", days_old=7.01)
    result, _ = lc.plan(params([{"path": str(logs), "patterns": ["*.log"], "age_days": 7}]), False)
    assert [c["path"] for c in result["candidates"]] == [str(logs / "b.log")]


def test_missing_directories_are_skipped_and_files_listed_once(tmp_path):
    logs = tmp_path / "logs"
    plant(logs / "a.log", days_old=40)
    entries = [
        {"path": str(tmp_path / "gone"), "patterns": ["*"]},
        {"path": str(logs), "patterns": ["*.log"]},
        {"path": str(logs) + "/", "patterns": ["a.*"]},
    ]
    result, refusal = lc.plan(params(entries), False)
    assert refusal is None
    assert result["candidates"] == [{"path": str(logs / "a.log"), "size": 100}]
    assert [disk["mount"] for disk in result["disk"]] == [result["disk"][0]["mount"]]


def test_batches():
    assert lc.batches(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    assert lc.batches([], 500) == []


@pytest.mark.parametrize(
    ("check_mode", "start"),
    [
        (False, "removed 2 file(s), freed 3.91 KB (4000 bytes)"),
        (True, "would remove 2 file(s), would free 3.91 KB (4000 bytes)"),
    ],
)
def test_summary_wording(check_mode, start):
    before = [{"mount": "/", "used": 2 * 1024**3, "free": 1024**3, "percent": 67}]
    after = [{"mount": "/", "used": 1024**3, "free": 2 * 1024**3, "percent": 34}]
    text = lc.summary(2, 4000, before, after, check_mode, ["/l/a", "/l/b"])
    assert text == (
        start
        + "; /: used 2.00 GB (67%) before, 1.00 GB (34%) after, 2.00 GB free; files: /l/a /l/b"
    )
    assert lc.summary(0, 0, [], [], False) == "removed 0 file(s), freed 0.00 Bytes (0 bytes)"
