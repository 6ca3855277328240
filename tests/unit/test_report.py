from __future__ import annotations

import json


def test_no_report_is_one_line(opsplay):
    result = opsplay("report", "--env", "lab")
    assert result.code == 2
    assert result.err.startswith("opsplay: no report for environment 'lab'")


def test_newest_report_is_shown(opsplay, tmp_path):
    reports = tmp_path / "state" / "reports" / "lab"
    reports.mkdir(parents=True)
    (reports / "20261101T000000Z-vacuum.json").write_text(json.dumps({"old": True}))
    (reports / "20261102T000000Z-vacuum.json").write_text(json.dumps({"new": True}))
    (reports / "20261102T000000Z-vacuum.md").write_text("# new\n")
    assert json.loads(opsplay("report", "--env", "lab", "--json").out) == {"new": True}
    assert opsplay("report", "--env", "lab").out == "# new\n"
