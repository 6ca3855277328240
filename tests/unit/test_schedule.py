"""opsplay schedule: cron entries and systemd units that are valid, idempotent and removable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from croniter import croniter

from opsplay.errors import ExitCode


def install(opsplay, root, *args):
    return opsplay(
        "schedule",
        "install",
        "--env",
        "prod",
        "--root",
        str(root),
        "--log-dir",
        str(root / "log"),
        *args,
    )


def installed_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file() and "log" not in p.parts)


def test_cron_install_matches_show_and_is_idempotent(opsplay, inventories, tmp_path):
    root = tmp_path / "root"
    first = install(opsplay, root)
    assert first.code == 0 and "wrote" in first.out
    (cron_file,) = installed_files(root)
    assert cron_file == root / "etc/cron.d/opsplay-prod"
    shown = opsplay("schedule", "show", "--env", "prod", "--log-dir", str(root / "log")).out
    assert shown == f"# --- /etc/cron.d/opsplay-prod\n{cron_file.read_text()}"

    again = install(opsplay, root)
    assert "already installed" in again.out

    entries = [
        line
        for line in cron_file.read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(entries) == 5  # four schedules and the status refresh
    for entry in entries:
        fields = entry.split()
        assert croniter.is_valid(" ".join(fields[:5])), entry
        assert fields[5] == "root"
    for entry in entries[:4]:
        assert "--yes --json" in entry and "flock -n /run/lock/opsplay-prod.lock" in entry
    assert entries[1].startswith("0 2 * * mon ")  # the runbooks' Monday 02:00
    # status refresh: every 15 minutes, read-only (no --yes), its own lock, only errors logged
    status = entries[4]
    assert status.startswith(
        "*/15 * * * * root /usr/bin/flock -n /run/lock/opsplay-prod-status.lock "
    )
    assert " status --env prod >/dev/null 2>>" in status and "--yes" not in status
    fires = croniter(" ".join(status.split()[:5]), 0)
    assert [fires.get_next(float) for _ in range(3)] == [900.0, 1800.0, 2700.0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_units_verify_and_fire_at_the_configured_times(opsplay, inventories, tmp_path):
    (inventories / "prod" / "schedule.yml").write_text("weekly: Sun 03:30\nquarterly: off\n")
    root = tmp_path / "root"
    assert install(opsplay, root, "--format", "systemd").code == 0
    units = [p.name for p in installed_files(root)]
    assert units == sorted(
        f"opsplay-prod-{s}.{k}"
        for s in ("daily", "weekly", "monthly", "status")
        for k in ("service", "timer")
    )
    unit_dir = root / "etc/systemd/system"
    verify = subprocess.run(
        ["systemd-analyze", "verify", *sorted(unit_dir.iterdir())], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr
    timer = (unit_dir / "opsplay-prod-weekly.timer").read_text()
    calendar = timer.split("OnCalendar=")[1].splitlines()[0]
    spec = subprocess.run(
        ["systemd-analyze", "calendar", calendar], capture_output=True, text=True, check=True
    ).stdout
    assert "Next elapse: Sun" in spec and "03:30:00" in spec
    status = (unit_dir / "opsplay-prod-status.timer").read_text()
    every = status.split("OnCalendar=")[1].splitlines()[0]
    spec = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations", "3", every],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    minutes = [
        line.split(":")[-2] for line in spec.splitlines() if "UTC" in line or "elapse" in line
    ]
    assert len(minutes) == 3 and all(m in ("00", "15", "30", "45") for m in minutes), spec
    assert "Persistent" not in status  # a missed refresh is not caught up at boot


def test_status_refresh_off_and_metrics_dir_passed_on(opsplay, inventories, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSPLAY_METRICS_DIR", str(tmp_path / "textfiles"))
    shown = opsplay("schedule", "show", "--env", "prod").out
    assert f"OPSPLAY_METRICS_DIR={tmp_path / 'textfiles'}" in shown
    off = opsplay("schedule", "show", "--env", "prod", "--status-every", "0").out
    assert " status --env" not in off


def test_a_root_opsplay_cannot_write_is_bad_input(opsplay, inventories, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = opsplay("schedule", "install", "--env", "prod", "--root", str(blocker / "below"))
    assert result.code == ExitCode.USAGE, result
    (line,) = result.err.strip().splitlines()
    assert line.startswith("opsplay: cannot install the schedule of prod below --root ")


def test_switching_format_and_remove(opsplay, inventories, tmp_path):
    root = tmp_path / "root"
    install(opsplay, root)
    switched = install(opsplay, root, "--format", "systemd")
    assert "removed" in switched.out
    assert not (root / "etc/cron.d/opsplay-prod").exists()
    foreign = root / "etc/systemd/system/opsplay-prod-custom.timer"
    foreign.write_text("[Timer]\nOnCalendar=daily\n")  # not ours: never touched
    removed = opsplay("schedule", "remove", "--env", "prod", "--root", str(root))
    assert removed.code == 0
    assert installed_files(root) == [foreign]


def test_bad_time_is_one_line(opsplay, inventories, tmp_path):
    (inventories / "prod" / "schedule.yml").write_text("weekly: '25:00'\n")
    result = opsplay("schedule", "show", "--env", "prod")
    assert result.code == ExitCode.USAGE
    assert result.err.strip() == (
        "opsplay: bad time '25:00' for the weekly schedule (e.g. Mon 02:00)"
    )


def test_unknown_env(opsplay, inventories):
    result = opsplay("schedule", "show", "--env", "qa")
    assert result.code == ExitCode.USAGE and "unknown environment 'qa'" in result.err


def test_paths_are_absolute(opsplay, inventories, tmp_path):
    content = opsplay("schedule", "show", "--env", "prod").out
    for line in content.splitlines():
        if line.startswith(("OPSPLAY_INVENTORY_DIR=", "OPSPLAY_STATE_DIR=")):
            assert Path(line.split("=", 1)[1]).is_absolute()
