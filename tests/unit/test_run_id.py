"""This run's id (plugins/module_utils/run_id.py): its one owner, and the two places that ask it
agree - the run gate's lease (run_gate.identity, from playbooks/tasks/gates.yml's arguments) and
the maintenance_mode role's windows (opsplay.ops.maintenance_mode_window, from the role's
arguments: the flag, the log and the dead-man switch's close all record that id). The four cases:
an AWX job (awx_job_id), an older AWX/Tower job (tower_job_id), an opsplay run (opsplay_run_id
first, even under AWX), a plain ansible-playbook run (none)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_collections.opsplay.ops.plugins.module_utils import run_gate
from ansible_collections.opsplay.ops.plugins.module_utils.run_id import of_this_run
from ansible_collections.opsplay.ops.plugins.modules import maintenance_mode_window as mw

from .module_harness import run_main

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "maintenance_mode"
AT = dt.datetime(2026, 12, 7, 1, 30, tzinfo=dt.UTC)

# (the run's variables, this run's id)
CASES = {
    "awx": ({"awx_job_id": 4242, "awx_user_name": "admin"}, "awx-4242"),
    "tower": ({"tower_job_id": "4242"}, "awx-4242"),
    "opsplay": ({"opsplay_run_id": "R-opsplay", "awx_job_id": 4242}, "R-opsplay"),
    "none": ({}, ""),
}


@pytest.mark.parametrize(("run_ids", "job_ids", "expected"), [
    ([], [4242], "awx-4242"),                      # AWX (ints as AWX passes them)
    ([""], ["", "4242"], "awx-4242"),              # older AWX/Tower: tower_job_id only
    (["R-opsplay"], ["4242"], "R-opsplay"),        # opsplay's own id first
    ([], [], ""),                                  # plain ansible-playbook: none
    (["", "  ", None, "R2"], [], "R2"),            # blanks skipped, the first one given wins
    (["R1", "R2"], [], "R1"),
    ([], [" 7 ", "8"], "awx-7"),                   # awx_job_id before tower_job_id, stripped
    ([], [None, "", "  "], ""),                    # a blank job id is no job
])  # fmt: skip
def test_this_runs_id(run_ids, job_ids, expected):
    assert of_this_run(run_ids, job_ids) == expected


def gate_arguments(variables: dict) -> dict:
    """The run gate's run_ids and awx_job_id as playbooks/tasks/gates.yml passes them."""
    (task,) = [t for t in yaml.safe_load((REPO / "playbooks/tasks/gates.yml").read_text())
               if "opsplay.ops.run_gate" in t]  # fmt: skip
    env = jinja2.Environment()
    given = task["opsplay.ops.run_gate"]
    return {
        "run_ids": [env.from_string(r).render(variables) for r in given["run_ids"]],
        "awx_job_id": env.from_string(given["awx_job_id"]).render(variables),
    }


def window_arguments(variables: dict) -> dict:
    """The run id arguments the maintenance_mode role gives its module (vars/main.yml, with the
    role's default for maintenance_mode_run_id unless the run sets it): passed through, no
    decision in them."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    window = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__maintenance_mode_window"]
    context = {"maintenance_mode_run_id": defaults["maintenance_mode_run_id"], **variables}
    keys = ("run_id", "opsplay_run_id", "awx_job_id", "tower_job_id")
    env = jinja2.Environment()
    return {key: env.from_string(window[key]).render(context) for key in keys}


@pytest.mark.parametrize("case", CASES)
def test_the_lease_and_the_maintenance_window_name_the_run_alike(case, tmp_path):
    variables, expected = CASES[case]
    lease = run_gate.identity("maintenance weekly", users=[], at=AT, controller="c1",
                              **gate_arguments(variables))  # fmt: skip
    flag, log = tmp_path / "maintenance.flag", tmp_path / "maintenance.log"
    rc, result = run_main(
        mw, {"state": "read", "flag_path": str(flag), "log_path": str(log),
             **window_arguments(variables)},
    )  # fmt: skip
    assert rc == 0, result
    assert result["run_id"] == expected
    if expected:
        assert lease["run_id"] == expected
    else:  # a plain run: its lease gets an id of its own, its windows record none (as before)
        assert lease["run_id"].startswith("c1-20261207T013000Z-")


def test_the_role_leaves_the_decision_to_python():
    """maintenance_mode_run_id defaults to empty and every argument the role derives the run id
    from is a variable passed as it is (`default('')` only): no choice is made in Jinja."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["maintenance_mode_run_id"] == ""
    assert window_arguments({}) == dict.fromkeys(
        ("run_id", "opsplay_run_id", "awx_job_id", "tower_job_id"), ""
    )
    assert window_arguments({"maintenance_mode_run_id": "mine", **CASES["opsplay"][0]}) == {
        "run_id": "mine",
        "opsplay_run_id": "R-opsplay",
        "awx_job_id": "4242",
        "tower_job_id": "",
    }


def test_an_explicit_run_id_overrides_and_the_window_is_compared_with_this_runs_id(tmp_path):
    flag, log = tmp_path / "maintenance.flag", tmp_path / "maintenance.log"
    base = {"flag_path": str(flag), "log_path": str(log), "env": "prod", "actor": "ops"}
    rc, result = run_main(mw, {**base, "state": "read", "run_id": "mine", "awx_job_id": "4242"})
    assert rc == 0 and result["run_id"] == "mine"
    # an AWX job's scheduled close closes the window its job opened (awx-4242), not another's
    window = {"time": "2026-12-07T01:00:00Z", "run_id": "awx-4242", "scheduled": True}
    flag.write_text(json.dumps(window))
    rc, result = run_main(mw, {**base, "state": "close", "scheduled": True, "awx_job_id": 4243})
    assert rc == 0 and result["changed"] is False and flag.exists()
    rc, result = run_main(mw, {**base, "state": "close", "scheduled": True, "awx_job_id": 4242})
    assert rc == 0 and result["changed"] is True and not flag.exists()
    (end,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert end["run_id"] == "awx-4242" and "closed_by_run_id" not in end
