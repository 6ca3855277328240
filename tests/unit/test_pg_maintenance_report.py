"""The pg_maintenance run report on the control node (module_utils pg_maintenance_report and
the module opsplay.ops.pg_maintenance_report), which replaced the role's file/template tasks and
its assert.

tests/unit/data/pg_maintenance_report/: NAME.json and NAME.md are what the former templates
(roles/pg_maintenance/templates/json.j2, md.j2 at 1b90579) wrote through ansible.builtin.template
for the run report in NAME.json: lab-vacuum from a weekly on the lab, the others synthetic
(check and real vacuum/reindex/report runs; rows with pipes, nulls, booleans, sizes; slow
queries absent, unusable, listed and empty; invalid indexes; blocked and blocking sessions)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import pg_maintenance_report as report
from ansible_collections.opsplay.ops.plugins.modules import pg_maintenance_report as module

from .module_harness import run_main

DATA = Path(__file__).parent / "data" / "pg_maintenance_report"
NAMES = ["lab-vacuum", "vacuum-check", "reindex", "report-check"]


@pytest.mark.parametrize("name", NAMES)
def test_the_files_are_byte_for_byte_what_the_former_templates_wrote(name):
    run = json.loads((DATA / f"{name}.json").read_text())
    assert report.to_json(run) == (DATA / f"{name}.json").read_text()
    assert report.markdown(run) == (DATA / f"{name}.md").read_text()


def test_a_cell_escapes_pipes_shows_none_as_dash_and_sizes_only_in_byte_columns():
    rows = [{"name": "a|b", "size": 1048576, "n": None}]
    columns = [("name", "name"), ("size", "size", "bytes"), ("n", "n")]
    assert report.table(rows, columns) == (
        "| name | size | n |\n| --- | --- | --- |\n| a\\|b | 1.00 MB | - | \n"
    )
    assert report.table([], columns) == "none\n"


def result(host, failures=(), check=False, time="2026-11-30T02:15:00Z"):
    lab = json.loads((DATA / "lab-vacuum.json").read_text())
    run = {"action": "vacuum", "mode": "targeted", "check": check, "time": time}
    run["thresholds"] = lab["thresholds"]
    return {
        "run": run,
        "report": {"host": host, "server": dict(lab["hosts"][0]["server"]), "databases": []},
        "failures": list(failures),
        "msg": f"vacuum on {host}: nothing to do",
    }


def test_save_writes_both_files_0600_in_a_0700_directory_named_by_env_time_and_action(tmp_path):
    run = report.run_report([result("db-1", check=True), result("db-2")], "prod")
    assert [h["host"] for h in run["hosts"]] == ["db-1", "db-2"] and run["env"] == "prod"
    lab = json.loads((DATA / "lab-vacuum.json").read_text())
    paths = report.save(str(tmp_path / "reports") + " ", "prod", dict(lab, check=True))
    base = tmp_path / "reports" / "prod" / "20261130T151510Z-vacuum-check"
    assert paths == [f"{base}.json", f"{base}.md"]
    assert stat.S_IMODE(os.stat(tmp_path / "reports" / "prod").st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in paths)
    assert sorted(os.listdir(base.parent)) == [base.name + ".json", base.name + ".md"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "r.md"
    path.write_text("previous\n")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        report.write_atomic(str(path), "new\n")
    assert path.read_text() == "previous\n" and os.listdir(tmp_path) == ["r.md"]


def test_the_first_host_writes_the_run_report_and_each_host_is_judged_by_its_failures(tmp_path):
    results = [
        result("db-1"),
        result("db-2", failures=["VACUUM of public.a in database app failed: x"]),
    ]
    args = {"results": results, "env": "lab", "directory": str(tmp_path)}
    rc, first = run_main(module, dict(args, host="db-1"))
    assert rc == 0 and first["msg"] == "vacuum on db-1: nothing to do"
    assert first["paths"] == [
        str(tmp_path / "lab" / f"20261130T021500Z-vacuum.{e}") for e in ("json", "md")
    ]
    written = json.loads(Path(first["paths"][0]).read_text())
    assert written == first["report"] and [h["host"] for h in written["hosts"]] == ["db-1", "db-2"]
    rc, second = run_main(module, dict(args, host="db-2"))
    assert rc == 1 and second["failed"] and second["paths"] == []
    assert second["msg"] == "VACUUM of public.a in database app failed: x"
    assert sorted(os.listdir(tmp_path / "lab")) == [
        "20261130T021500Z-vacuum.json",
        "20261130T021500Z-vacuum.md",
    ]


def test_no_result_with_a_report_writes_nothing(tmp_path):
    rc, got = run_main(
        module, {"results": [], "host": "db-1", "env": "lab", "directory": str(tmp_path)}
    )
    assert rc == 0 and got["paths"] == [] and got["report"] is None and os.listdir(tmp_path) == []


def test_a_report_directory_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    args = {
        "results": [result("db-1")],
        "host": "db-1",
        "env": "lab",
        "directory": str(tmp_path / "file"),
    }
    rc, got = run_main(module, args)
    assert rc == 1 and got["msg"].startswith(f"cannot write the report under {tmp_path}/file: ")
