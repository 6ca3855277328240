#!/usr/bin/python3
"""Ansible module opsplay.ops.log_rotation_plan:
the declared log sets of roles/log_rotation, checked and completed.

What it decides and does, its options and its results: log_rotation_plan.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import disk_usage

NAME = re.compile(r"^[A-Za-z0-9_-]+$")
ONE_LINE_KEYS = ("size", "maxsize", "minsize", "su", "create")
SCRIPT_KEYS = ("prerotate", "postrotate")
# logrotate directives that open a script read up to an `endscript` line.
SCRIPT_DIRECTIVES = (
    "firstaction",
    "lastaction",
    "prerotate",
    "postrotate",
    "preremove",
    "endscript",
)
BREAKERS = ("\n", "\r", "{", "}")
# What every set starts from, under the role's log_rotation_* defaults (option defaults).
BASE_DEFAULTS = {
    "state": "present",
    "preset": "app",
    "paths": [],
    "size": "",
    "maxsize": "",
    "minsize": "",
    "su": "",
    "copytruncate": False,
    "sharedscripts": False,
    "prerotate": "",
    "postrotate": "",
    "options": [],
}


def merge(sets, defaults, presets):
    """Each set with the defaults, then its preset's keys, then its own keys."""
    merged = []
    for item in sets:
        entry = dict(defaults)
        entry.update(presets.get(item.get("preset") or defaults.get("preset", "app")) or {})
        entry.update(item)
        merged.append(entry)
    return merged


def _breakers(value):
    """The block-breaking characters in a one-line value, described."""
    found = []
    if "\n" in value or "\r" in value:
        found.append("a line break")
    found.extend(repr(c) for c in "{}" if c in value)
    return " and ".join(found)


def script_problems(hook, text):
    """Why the prerotate/postrotate text ``text`` cannot go between hook and endscript."""
    problems = []
    # The template writes the trimmed value line by line (split on \n).
    for number, line in enumerate(text.strip().split("\n"), start=1):
        words = line.split()
        if not words:
            continue
        if re.match(r"endscript(?![A-Za-z0-9_])", words[0]):
            problems.append(
                f"{hook} line {number} {line.strip()!r} would end the script there and make the "
                "rest of the value logrotate configuration"
            )
        elif line.strip() in ("{", "}"):
            problems.append(
                f"{hook} line {number} is a lone {line.strip()!r}, which logrotate reads as a "
                "block boundary in configuration; keep braces on the line of their command"
            )
    return problems


def set_problems(entry, presets):
    """Problems of one completed set (without the duplicate-name check)."""
    name = entry.get("name")
    problems = []
    if not isinstance(name, str) or not NAME.match(name):
        return [f"log set name {name!r} must match [A-Za-z0-9_-]+"]
    label = f"log set '{name}'"
    if entry.get("preset") not in presets:
        problems.append(f"{label}: unknown preset {entry.get('preset')!r}")
    paths = entry.get("paths") or []
    if entry.get("state", "present") == "present" and not paths:
        problems.append(f"{label} has no paths")
    for path in paths:
        path = str(path)
        if not path.startswith("/") or '"' in path:
            problems.append(f"{label}: path {path!r} must be absolute and contain no double quote")
        bad = _breakers(path)
        if bad:
            problems.append(
                f"{label}: path {path!r} contains {bad}, which would break the set's block "
                "(list each file or use * and ? globs)"
            )
    for key in ONE_LINE_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and _breakers(value):
            problems.append(
                f"{label}: {key} {value!r} contains {_breakers(value)}, which would end the "
                "set's block and start new configuration"
            )
    for number, option in enumerate(entry.get("options") or [], start=1):
        option = str(option)
        bad = _breakers(option)
        if bad:
            problems.append(
                f"{label}: option {number} {option!r} contains {bad}, which would end the "
                "set's block and start new configuration"
            )
        elif option.split() and option.split()[0] in SCRIPT_DIRECTIVES:
            problems.append(
                f"{label}: option {number} {option!r} opens or closes a script, which one "
                "option line cannot hold; use the prerotate/postrotate keys"
            )
    for hook in SCRIPT_KEYS:
        text = entry.get(hook)
        if isinstance(text, str):
            problems.extend(f"{label}: {p}" for p in script_problems(hook, text))
    return problems


def problems(merged, presets):
    """Every problem of the completed sets, in declaration order, each once."""
    found = []
    names = [entry.get("name") for entry in merged]
    for entry in merged:
        found.extend(set_problems(entry, presets))
        if names.count(entry.get("name")) > 1:
            found.append(f"log set name '{entry.get('name')}' is declared more than once")
    unique = []
    for problem in found:
        if problem not in unique:
            unique.append(problem)
    return unique


def remove_absent(absent, directory, check):
    """Remove DIRECTORY/NAME of every set declared absent (not in check mode): the names
    removed (or that would be) and the diff of each, as ansible.builtin.file reports it."""
    removed, diffs = [], []
    for entry in absent:
        path = os.path.join(directory, entry["name"])
        if not os.path.lexists(path):
            continue
        if not check:
            os.remove(path)
        removed.append(entry["name"])
        diffs.append(
            {"before": {"path": path, "state": "file"}, "after": {"path": path, "state": "absent"}}
        )
    return removed, diffs


def main():
    module = AnsibleModule(
        argument_spec={
            "sets": {"type": "list", "elements": "dict", "required": True},
            "defaults": {"type": "dict", "required": True},
            "presets": {"type": "dict", "required": True},
            "disk_paths": {"type": "list", "elements": "path", "default": []},
            "directory": {"type": "path", "default": "/etc/logrotate.d"},
        },
        supports_check_mode=True,
    )
    presets = module.params["presets"]
    defaults = {**BASE_DEFAULTS, **module.params["defaults"]}
    merged = merge(module.params["sets"], defaults, presets)
    found = problems(merged, presets)
    if found:
        module.fail_json(msg="log_rotation_sets: " + "; ".join(found), problems=found)
    disk_before = disk_usage.filesystems(module.params["disk_paths"])
    absent = [s for s in merged if s.get("state") == "absent"]
    try:
        removed, diffs = remove_absent(absent, module.params["directory"], module.check_mode)
    except OSError as exc:
        module.fail_json(msg="cannot remove the log set %s: %s" % (exc.filename, exc.strerror))
    result = {
        "changed": bool(removed),
        "present": [s for s in merged if s.get("state", "present") == "present"],
        "absent": absent,
        "removed": removed,
        "disk_before": disk_before,
    }
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
