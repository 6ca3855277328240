"""vacuum through the CLI on the lab (Mitogen, become_user postgres), then `opsplay report`."""

from __future__ import annotations

import json

from opsplay.errors import ExitCode


def test_vacuum_then_report(run_opsplay):
    proc = run_opsplay("run", "vacuum", "--env", "lab", "--json")
    assert proc.code == ExitCode.OK, proc.out[-2000:] + proc.err
    assert json.loads(proc.out)["strategy"] == "mitogen_linear"

    shown = run_opsplay("report", "--env", "lab", "--json")
    assert shown.code == ExitCode.OK, shown.err
    report = json.loads(shown.out)
    assert "postgres" in json.dumps(report)  # the lab's databases are in it
    reports = list((run_opsplay.state / "reports" / "lab").glob("*-vacuum.json"))
    assert len(reports) == 1
