"""A role's failed argument check is bad input (exit 2): which runs, and the one line."""

from __future__ import annotations

from pathlib import Path

from opsplay.arguments import ArgumentFailure, bad_input, from_result, given_vars
from opsplay.display import Progress
from opsplay.errors import ExitCode
from opsplay.execute import _bad_input
from opsplay.inputs import RunOptions
from opsplay.runner import RunResult

SPEC = {
    "pg_backup_keep_daily": {"type": "int", "default": 7},
    "pg_backup_offsite_keep_daily": {"type": "int"},
    "pg_backup_format": {"type": "str", "choices": ["custom", "directory"]},
    "pg_backup_login_password": {"type": "str", "no_log": True},
    "pg_backup_databases": {"type": "list", "elements": "str"},
}
# As Ansible 2.19 words them (seen on the lab with -e pg_backup_keep_daily=abc).
KEEP_DAILY_ERRORS = [
    "argument 'pg_backup_keep_daily' is of type str and we were unable to convert to int: "
    "\"'abc'\" cannot be converted to an int",
    "argument 'pg_backup_offsite_keep_daily' is of type str and we were unable to convert to "
    "int: \"'abc'\" cannot be converted to an int",
]


def failed_event(host: str, action: str, res: dict) -> dict:
    return {
        "event": "runner_on_failed",
        "event_data": {"host": host, "task": "t", "resolved_action": action, "res": res},
    }


def argument_check_result(errors: list[str]) -> dict:
    return {
        "msg": "Validation of arguments failed:\n" + "\n".join(errors),
        "argument_errors": errors,
        "argument_spec_data": SPEC,
        "validate_args_context": {"type": "role", "name": "pg_backup"},
    }


def failure(errors: list[str]) -> ArgumentFailure:
    result = from_result("ansible.builtin.validate_argument_spec", argument_check_result(errors))
    assert result is not None
    return result


def test_names_only_the_variable_given_and_its_type():
    line = bad_input(
        {"h1": failure(KEEP_DAILY_ERRORS), "h2": failure(KEEP_DAILY_ERRORS)},
        {"pg_backup_keep_daily": "abc"},
    )
    assert line == (
        "bad input: pg_backup_keep_daily: 'abc' is not an int (argument spec of role pg_backup)"
    )


def test_another_failure_on_any_host_is_a_host_failure():
    assert bad_input({"h1": failure(KEEP_DAILY_ERRORS), "h2": None}, {}) is None
    assert bad_input({}, {}) is None
    assert from_result("ansible.builtin.command", {"msg": "non-zero return code"}) is None


def test_choices_lists_and_secrets():
    errors = [
        "value of pg_backup_format must be one of: custom, directory, got: tar",
        "argument 'pg_backup_login_password' is of type list and we were unable to convert to str",
        "Elements value for option 'pg_backup_databases' is of type dict and we were unable to "
        "convert to str",
    ]
    given = {
        "pg_backup_format": "tar",
        "pg_backup_login_password": ["s3cret"],
        "pg_backup_databases": [{"a": 1}],
        "unrelated": "x",
    }
    line = bad_input({"h1": failure(errors)}, given)
    assert line is not None
    assert "pg_backup_format: 'tar' is not one of custom, directory" in line
    assert "pg_backup_login_password: the value given is not a str" in line
    assert "s3cret" not in line  # no_log in the spec: the value is never shown
    assert "pg_backup_databases: [{'a': 1}] is not a list of str" in line
    assert "unrelated" not in line


def test_an_error_from_the_inventory_is_told_in_ansibles_words():
    errors = [KEEP_DAILY_ERRORS[0].replace("'abc'", "'seven'")]
    line = bad_input({"h1": failure(errors)}, {"other_var": "1"})
    assert line == f"bad input: {errors[0]} (argument spec of role pg_backup)"


def test_variables_given_in_files_count_vault_files_are_not_read(tmp_path):
    plain = tmp_path / "vars.yml"
    plain.write_text("pg_backup_keep_daily: abc\nshared: file\n")
    vault = tmp_path / "vault.yml"
    vault.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    given = given_vars({"shared": "cli"}, [plain, vault, Path("/nonexistent")])
    assert given == {"pg_backup_keep_daily": "abc", "shared": "cli"}


def test_a_run_whose_hosts_failed_their_argument_check_exits_2():
    progress = Progress("t", live=False, quiet=True)
    for host in ("h1", "h2"):
        res = argument_check_result(KEEP_DAILY_ERRORS)
        progress.handle(failed_event(host, "ansible.builtin.validate_argument_spec", res))
    progress.handle({"event": "playbook_on_stats", "event_data": {"failures": {"h1": 1, "h2": 1}}})
    failed = RunResult("failed", 2, progress.stats, Path("/nonexistent"))
    options = RunOptions(extravars={"pg_backup_keep_daily": "abc"})
    line = _bad_input(failed, progress, options)
    assert line is not None and line.startswith("bad input: pg_backup_keep_daily: 'abc' ")
    assert ExitCode.USAGE == 2

    # One host failing otherwise (here after its argument check passed) makes it exit 3.
    progress.handle(failed_event("h2", "ansible.builtin.command", {"msg": "exit 1"}))
    assert _bad_input(failed, progress, options) is None
    # Unreachable hosts (rc 4) are never bad input.
    unreachable = RunResult("failed", 4, progress.stats, Path("/nonexistent"))
    assert _bad_input(unreachable, progress, options) is None


def loop_item(role: str, errors: list[str] | None) -> dict:
    """One item of the loop in playbooks/tasks/check-arguments.yml, as Ansible 2.19 returns it."""
    item = {
        "validate_args_context": {"type": "role", "name": role, "argument_spec_name": "main"},
        "changed": False,
        "failed": errors is not None,
        "msg": "The arg spec validation passed",
        "item": {"role": role, "entry_point": "main"},
        "ansible_loop_var": "item",
    }
    if errors is not None:
        item.update(argument_check_result(errors))
        item["validate_args_context"] = {"type": "role", "name": role}
    return item


def test_a_check_of_several_roles_names_each_role_and_variable():
    lock_timeout = [
        "argument 'security_updates_lock_timeout' is of type str and we were unable to convert to "
        "int: \"'abc'\" cannot be converted to an int"
    ]
    # The loop's own result: every item, passed or failed; msg says only 'One or more items failed'.
    res = {
        "changed": False,
        "msg": "One or more items failed",
        "results": [
            loop_item("health", None),
            loop_item("pg_backup", KEEP_DAILY_ERRORS),
            loop_item("security_updates", lock_timeout),
        ],
    }
    res["results"][2]["argument_spec_data"] = {"security_updates_lock_timeout": {"type": "int"}}
    failure = from_result("ansible.builtin.validate_argument_spec", res)
    assert failure is not None
    assert [failure.role, *(f.role for f in failure.also)] == ["pg_backup", "security_updates"]

    given = {"pg_backup_keep_daily": "abc", "security_updates_lock_timeout": "abc"}
    # Both hosts failed the same way: each variable is named once, with its role.
    assert bad_input({"h1": failure, "h2": failure}, given) == (
        "bad input: pg_backup_keep_daily: 'abc' is not an int (argument spec of role pg_backup); "
        "security_updates_lock_timeout: 'abc' is not an int"
        " (argument spec of role security_updates)"
    )
