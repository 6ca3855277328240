"""plugins/module_utils/argument_check.py: the up-front check of a playbook's roles' variables
(opsplay.ops.check_arguments), against the roles' real argument specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.opsplay.ops.plugins.module_utils import argument_check
from ansible_collections.opsplay.ops.plugins.modules import check_arguments

from opsplay.arguments import bad_input, from_result

ROLES = Path(__file__).resolve().parents[2] / "roles"


def options(role: str, entry_point: str = "main") -> dict:
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    return argument_check.given_options(specs["argument_specs"], entry_point)


def test_required_is_relaxed_at_the_top_only():
    opts = options("maintenance_mode")
    assert opts["maintenance_mode_state"]["required"] is False
    assert all(spec["required"] is False for spec in opts.values())
    # suboptions keep theirs: a list of dicts still needs each element's required keys
    certs = options("cert_renewal")
    nested = [
        spec
        for spec in certs.values()
        if any(sub.get("required") for sub in (spec.get("options") or {}).values())
    ]
    assert nested


def test_an_unknown_entry_point_is_a_key_error():
    specs = yaml.safe_load((ROLES / "health" / "meta" / "argument_specs.yml").read_text())
    with pytest.raises(KeyError):
        argument_check.given_options(specs["argument_specs"], "nowhere")


def test_good_values_pass_and_nothing_given_passes():
    opts = options("pg_backup")
    assert argument_check.check("pg_backup", "main", opts, {})["failed"] is False
    good = argument_check.check("pg_backup", "main", opts, {"pg_backup_keep_daily": 7})
    assert good["failed"] is False and "argument_errors" not in good


def test_wrong_values_fail_with_ansibles_errors_and_opsplay_names_them():
    results = [
        argument_check.check("health", "main", options("health"), {}),
        argument_check.check(
            "pg_backup", "main", options("pg_backup"), {"pg_backup_keep_daily": "abc"}
        ),
        argument_check.check("maintenance_mode", "on", options("maintenance_mode", "on"), {}),
    ]
    res = argument_check.summary(results)
    assert res["failed"] is True and "pg_backup" in res["msg"]
    assert [r["failed"] for r in res["results"]] == [False, True, False]
    failed = res["results"][1]
    assert failed["argument_spec_data"]["pg_backup_keep_daily"]["type"] == "int"
    assert any("pg_backup_keep_daily" in e for e in failed["argument_errors"])
    # the CLI reads it as it reads validate_argument_spec's loop: one line, exit 2's message
    failure = from_result("opsplay.ops.check_arguments", res)
    assert failure is not None and failure.role == "pg_backup"
    assert bad_input({"h1": failure}, {"pg_backup_keep_daily": "abc"}) == (
        "bad input: pg_backup_keep_daily: 'abc' is not an int (argument spec of role pg_backup)"
    )


def test_all_passed_is_not_failed():
    res = argument_check.summary([argument_check.check("health", "main", options("health"), {})])
    assert (
        "failed" not in res
        and res["msg"] == "every variable given passes the argument specs (1 checked)"
    )


def test_the_module_form_says_it_runs_on_the_controller():
    from .module_harness import run_main

    rc, result = run_main(check_arguments, {"roles": [{"role": "health"}]})
    assert rc != 0 and "runs on the controller" in result["msg"]
