"""plugins/modules/log_rotation_plan.py and log_rotation_report.py as the role calls them
(main() in this process), on real directories in tmp_path: the sets declared absent removed
before anything else (not in check mode, not when a set is refused), the logs rotated now when
forced, a rejected set failing the host, the disk lines.

logrotate is not installed here: a stand-in on PATH rotates each path its configuration files
name (PATH -> PATH.1, a new empty PATH) and can be told to fail. molecule/log_rotation proves
the real logrotate.
"""

from __future__ import annotations

import os

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import disk_usage
from ansible_collections.opsplay.ops.plugins.modules import log_rotation_plan as plan_module
from ansible_collections.opsplay.ops.plugins.modules import log_rotation_report as report_module

from .module_harness import run_main
from .test_log_rotation_plan import DEFAULTS, PRESETS

FAKE_LOGROTATE = """#!/bin/sh
echo "$*" >> "$FAKE_LOGROTATE_LOG"
if [ -n "$FAKE_LOGROTATE_FAILS" ]; then
  echo "error: $FAKE_LOGROTATE_FAILS" >&2; echo "error: found error, skipping" >&2; exit 1
fi
shift  # -f
for conf in "$@"; do
  for log in $(sed -n 's/^\\(\\/[^ ]*\\) {$/\\1/p' "$conf"); do mv "$log" "$log.1"; : > "$log"; done
done
"""


# --- log_rotation_plan -----------------------------------------------------------------------


@pytest.fixture
def confd(tmp_path):
    directory = tmp_path / "logrotate.d"
    directory.mkdir()
    (directory / "legacy").write_text("/var/log/legacy.log {\n}\n")
    (directory / "keep").write_text("/var/log/keep.log {\n}\n")
    return directory


def plan_args(directory, sets, **kw):
    return dict(sets=sets, defaults=DEFAULTS, presets=PRESETS, directory=str(directory), **kw)


SETS = [
    {"name": "app", "paths": ["/var/log/app/*.log"], "rotate": 7},
    {"name": "legacy", "state": "absent"},
    {"name": "never-installed", "state": "absent"},
]


def test_plan_completes_the_sets_and_removes_those_declared_absent(confd, tmp_path):
    args = plan_args(confd, SETS, disk_paths=[str(tmp_path), str(tmp_path / "missing")])
    rc, result = run_main(plan_module, dict(args, _ansible_diff=True))
    assert rc == 0, result
    assert result["changed"] is True and result["removed"] == ["legacy"]
    assert sorted(p.name for p in confd.iterdir()) == ["keep"]
    (app,) = result["present"]
    assert app["name"] == "app" and app["rotate"] == 7 and app["create"] is True  # a default
    assert app["copytruncate"] is False  # from the module's own base defaults
    assert [a["name"] for a in result["absent"]] == ["legacy", "never-installed"]
    assert result["diff"] == [
        {
            "before": {"path": str(confd / "legacy"), "state": "file"},
            "after": {"path": str(confd / "legacy"), "state": "absent"},
        }
    ]
    (disk,) = result["disk_before"]  # one filesystem; a missing path is skipped
    assert str(tmp_path).startswith(disk["mount"]) and disk["used"] >= 0


def test_plan_in_check_mode_removes_nothing_and_gives_no_diff_unless_asked(confd):
    rc, result = run_main(plan_module, plan_args(confd, SETS), check_mode=True)
    assert rc == 0, result
    assert result["changed"] is True and result["removed"] == ["legacy"]
    assert (confd / "legacy").exists() and "diff" not in result


def test_a_refused_set_fails_before_anything_is_removed(confd):
    sets = [*SETS, {"name": "bad name", "paths": ["/x"]}, {"name": "web", "preset": "apache"}]
    rc, result = run_main(plan_module, plan_args(confd, sets))
    assert rc == 1
    assert result["problems"] == [
        "log set name 'bad name' must match [A-Za-z0-9_-]+",
        "log set 'web': unknown preset 'apache'",
        "log set 'web' has no paths",
    ]
    assert result["msg"] == "log_rotation_sets: " + "; ".join(result["problems"])
    assert (confd / "legacy").exists()


def test_a_set_that_cannot_be_removed_is_named(confd):
    (confd / "legacy").unlink()
    (confd / "legacy").mkdir()  # a directory where the set's file was
    rc, result = run_main(plan_module, plan_args(confd, SETS))
    assert rc == 1
    assert result["msg"] == f"cannot remove the log set {confd / 'legacy'}: Is a directory"


# --- log_rotation_report ---------------------------------------------------------------------


@pytest.fixture
def logs(tmp_path, monkeypatch):
    """Two installed sets rotating two real log files, and the logrotate stand-in on PATH."""
    bin_dir, confd, logdir = tmp_path / "bin", tmp_path / "logrotate.d", tmp_path / "log"
    for directory in (bin_dir, confd, logdir):
        directory.mkdir()
    for name in ("app", "nginx"):
        (logdir / f"{name}.log").write_text(f"{name} lines\n")
        (confd / name).write_text(f"{logdir}/{name}.log {{\n    rotate 7\n}}\n")
    (bin_dir / "logrotate").write_text(FAKE_LOGROTATE)
    (bin_dir / "logrotate").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOGROTATE_LOG", str(tmp_path / "logrotate.calls"))
    monkeypatch.delenv("FAKE_LOGROTATE_FAILS", raising=False)
    return confd, logdir, tmp_path / "logrotate.calls"


def report_args(confd, **kw):
    present = [{"name": "app"}, {"name": "nginx"}]
    installed = {"results": [{"item": {"name": "app"}}, {"item": {"name": "nginx"}}]}
    return {"directory": str(confd), "present": present, "install": installed, **kw}


BEFORE = {"used": 3 * 1024**3, "free": 1024**3, "percent": 75}


def disk_mount(path):
    """A 'before' measure of the filesystem holding ``path`` (numbers of our choosing)."""
    (measured,) = disk_usage.filesystems([str(path)])
    return dict(BEFORE, mount=measured["mount"])


def test_forced_rotation_rotates_every_present_set_now(logs, tmp_path):
    confd, logdir, calls = logs
    disk = disk_mount(tmp_path)
    args = report_args(confd, force=True, disk_paths=[str(tmp_path)], disk_before=[disk])
    rc, result = run_main(report_module, args)
    assert rc == 0, result
    assert calls.read_text() == f"-f {confd}/app {confd}/nginx\n"
    assert (logdir / "app.log.1").read_text() == "app lines\n"
    assert (logdir / "app.log").read_text() == "" and (logdir / "nginx.log.1").exists()
    assert result["changed"] is True and result["rotated"] == [f"{confd}/app", f"{confd}/nginx"]
    (line,) = result["disk"]
    assert line.startswith(f"{disk['mount']}: used 3.00 GB (75%) before, ")
    assert result["msg"] == f"rotated now: {confd}/app, {confd}/nginx; {line}"


def test_without_force_or_in_check_mode_nothing_is_rotated(logs):
    confd, logdir, calls = logs
    rc, result = run_main(report_module, report_args(confd))
    assert rc == 0 and result["changed"] is False and result["rotated"] == []
    assert result["msg"] == ""
    rc, result = run_main(report_module, report_args(confd, force=True), check_mode=True)
    assert rc == 0 and result["changed"] is True  # would rotate
    assert result["rotated"] == [f"{confd}/app", f"{confd}/nginx"]
    assert not calls.exists() and not (logdir / "app.log.1").exists()


def test_a_rejected_set_fails_the_host_and_nothing_is_rotated(logs):
    confd, logdir, calls = logs
    installed = {
        "results": [
            {"item": {"name": "app"}},
            {"item": {"name": "nginx"}, "exit_status": 1, "stderr": "error: bad line 3\n\n"},
        ]
    }
    rc, result = run_main(report_module, report_args(confd, force=True, install=installed))
    assert rc == 1
    assert result["msg"] == (
        f"log set 'nginx' rejected by logrotate, {confd}/nginx left unchanged: error: bad line 3"
    )
    assert result["rotated"] == [] and not calls.exists()
    assert not (logdir / "app.log.1").exists()


def test_a_failing_rotation_fails_the_host_with_logrotates_words(logs, monkeypatch):
    confd, _logdir, calls = logs
    monkeypatch.setenv("FAKE_LOGROTATE_FAILS", "cannot stat /var/log/app.log")
    rc, result = run_main(report_module, report_args(confd, force=True))
    assert rc == 1
    assert result["msg"] == (
        "logrotate -f failed (exit 1): error: cannot stat /var/log/app.log;"
        " error: found error, skipping"
    )
    assert calls.exists()
