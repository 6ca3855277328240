"""The up-front check of a playbook's roles' variables (opsplay.ops.check_arguments).

A playbook of several roles checks, before any host is touched, the values the inventory and
``-e`` give for every role and entry point it will use, against each role's
``meta/argument_specs.yml``, with the same validator as Ansible's own check at a role's start
(ansible.builtin.validate_argument_spec). ``required`` is relaxed at the top level: role
defaults and the vars an include passes are not in scope here, only what the operator gave.
Each item's result has validate_argument_spec's keys, so opsplay reads both the same way
(src/opsplay/arguments.py).
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ARGUMENT_SPEC = {
    "roles": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "role": {"type": "str", "required": True},
            "entry_point": {"type": "str", "default": "main"},
        },
    },
}


def given_options(specs: dict[str, Any], entry_point: str) -> dict[str, Any]:
    """The options of ``entry_point`` in a role's ``argument_specs`` mapping, each top-level
    option's ``required`` off (the role's own check, where it runs, keeps it)."""
    entry = specs.get(entry_point)
    if not isinstance(entry, dict):
        raise KeyError(entry_point)
    options = entry.get("options") or {}
    return {name: {**(spec or {}), "required": False} for name, spec in options.items()}


def check(role: str, entry_point: str, options: dict[str, Any], values: dict[str, Any]) -> dict:
    """One role's result: validate_argument_spec's keys (validate_args_context; on failure
    failed, msg, argument_errors, argument_spec_data)."""
    result: dict[str, Any] = {
        "item": {"role": role, "entry_point": entry_point},
        "validate_args_context": {"type": "role", "name": role, "argument_spec_name": entry_point},
        "changed": False,
        "failed": False,
        "msg": "The arg spec validation passed",
    }
    errors = (
        ArgumentSpecValidator(options)
        .validate(values, validate_role_argument_spec=True)
        .error_messages
    )
    if errors:
        result.update(
            failed=True,
            msg="Validation of arguments failed:\n" + "\n".join(errors),
            argument_errors=list(errors),
            argument_spec_data=options,
        )
    return result


def summary(results: list[dict]) -> dict[str, Any]:
    """The task's result over every role's: failed when one failed, msg naming the roles."""
    failed = [r for r in results if r["failed"]]
    if not failed:
        return {
            "changed": False,
            "results": results,
            "msg": f"every variable given passes the argument specs ({len(results)} checked)",
        }
    roles = ", ".join(r["validate_args_context"]["name"] for r in failed)
    return {
        "changed": False,
        "failed": True,
        "results": results,
        "msg": f"Validation of arguments failed for role {roles}: " + failed[0]["msg"],
    }
