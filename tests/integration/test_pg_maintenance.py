"""vacuum through the CLI on the lab (Mitogen, become_user postgres), then `opsplay report`."""

from __future__ import annotations

import json

import pytest

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


@pytest.mark.parametrize(
    "procedure, given, line",
    [
        (
            "kill-long-queries",
            "older_than=abc",
            "older_than 'abc' is not a duration (use e.g. 90, 30s, 10m, 1h, 1d)",
        ),
        (
            "vacuum",
            "pg_maintenance_lock_timeout=soon",
            "pg_maintenance_lock_timeout 'soon' is not a PostgreSQL time"
            " (e.g. 5s, 500ms, 1min, 1h)",
        ),
    ],
)
def test_a_bad_option_is_bad_input_in_one_line(run_opsplay, procedure, given, line):
    # Refused by the module on every host before it connects: exit 2 (README "Exit codes": bad
    # option), not 3 as when a Jinja assert refused it.
    proc = run_opsplay("run", procedure, "--env", "lab", "--yes", "-e", given)
    assert proc.code == ExitCode.USAGE, proc.out + proc.err
    errors = [text for text in proc.err.splitlines() if text.startswith("opsplay:")]
    assert errors == ["opsplay: bad input: " + line], proc.err
