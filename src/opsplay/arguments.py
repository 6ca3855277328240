"""Bad input found on the hosts (exit 2, in one line): a role's argument check failing, or a
role's module refusing what it was asked (result key ``opsplay_bad_input: true``, e.g. a restore
of a database that has no backup on that host).

Ansible checks a role's variables against its ``meta/argument_specs.yml`` in a task of its own
(action ``validate_argument_spec``) before the role's first task. Which hosts failed that task,
the errors and the spec come from that task's result; the variables named are the ones the
operator gave with ``-e`` when the errors are about them (a default derived from one, such as
``pg_backup_offsite_keep_daily: "{{ pg_backup_keep_daily }}"``, fails with it and is not named).

A playbook applying several roles checks them all first (playbooks/tasks/check-arguments.yml:
opsplay.ops.check_arguments, the same validator on the controller), one result per role and
entry point in ``results``, as a loop would give them: each failed item is one role's check.

A run is bad input only when every failed host's last failure was one of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ACTIONS = frozenset(
    {
        "validate_argument_spec",
        "ansible.builtin.validate_argument_spec",
        "ansible.legacy.validate_argument_spec",
        # playbooks/tasks/check-arguments.yml: every role of a playbook in one task
        "opsplay.ops.check_arguments",
        "check_arguments",
    }
)


@dataclass(frozen=True)
class ArgumentFailure:
    """One host's failed argument check: the role, Ansible's errors, the role's spec."""

    role: str
    errors: tuple[str, ...]
    spec: dict[str, Any]
    # the other roles' checks that failed in the same task (a loop over several roles)
    also: tuple[ArgumentFailure, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """One host's module refused its input (``opsplay_bad_input``); ``message`` says why."""

    message: str


BadInput = ArgumentFailure | Refusal


def from_result(action: str, res: dict[str, Any]) -> BadInput | None:
    """The bad input a failed task's result reports; None when it failed for another reason."""
    if action not in ACTIONS:
        if res.get("opsplay_bad_input") is True:
            return Refusal(_one_line(res.get("msg") or "refused"))
        return None
    items = [item for item in res.get("results") or [] if item.get("failed")]
    if items:  # a loop: each failed item is one role's check
        first, *others = (_one(item) for item in items)
        return replace(first, also=tuple(others))
    return _one(res)


def _one(res: dict[str, Any]) -> ArgumentFailure:
    context = res.get("validate_args_context") or {}
    errors = res.get("argument_errors") or [res.get("msg") or "argument check failed"]
    return ArgumentFailure(
        role=str(context.get("name") or "?"),
        errors=tuple(_one_line(e) for e in errors),
        spec=dict(res.get("argument_spec_data") or {}),
    )


def bad_input(failures: dict[str, BadInput | None], given: dict[str, Any]) -> str | None:
    """The one line when every failed host (``failures``: each one's last failure, None when it
    was not bad input) failed on bad input; else None (the hosts failed)."""
    if not failures or any(f is None for f in failures.values()):
        return None
    parts: list[str] = []
    for failure in failures.values():
        assert failure is not None
        for part in _parts(failure, given):
            if part not in parts:
                parts.append(part)
    return "bad input: " + "; ".join(parts)


def _parts(failure: BadInput, given: dict[str, Any]) -> list[str]:
    if isinstance(failure, Refusal):
        return [failure.message]
    return [part for check in (failure, *failure.also) for part in _describe(check, given)]


def _describe(failure: ArgumentFailure, given: dict[str, Any]) -> list[str]:
    named = [
        name
        for name in given
        if name in failure.spec and any(_mentions(error, name) for error in failure.errors)
    ]
    where = f"(argument spec of role {failure.role})"
    if not named:  # from the inventory or a role default: Ansible's own words
        return [f"{'; '.join(failure.errors)} {where}"]
    return [f"{name}: {_problem(given[name], failure.spec[name])} {where}" for name in named]


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _mentions(error: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", error) is not None


def _problem(value: Any, spec: dict[str, Any]) -> str:
    shown = "the value given" if spec.get("no_log") else repr(value)
    choices = spec.get("choices")
    if choices and str(value) not in [str(c) for c in choices]:
        return f"{shown} is not one of {', '.join(str(c) for c in choices)}"
    kind = str(spec.get("type") or "str")
    if kind == "list" and spec.get("elements"):
        kind = f"list of {spec['elements']}"
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{shown} is not {article} {kind}"


def given_vars(extravars: dict[str, Any], files: list[Path]) -> dict[str, Any]:
    """The variables the operator gave: ``-e @FILE`` (unless vault-encrypted), then the rest."""
    import yaml

    given: dict[str, Any] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            data = None if text.startswith("$ANSIBLE_VAULT") else yaml.safe_load(text)
        except (OSError, yaml.YAMLError):
            data = None
        if isinstance(data, dict):
            given.update(data)
    given.update(extravars)
    return given
