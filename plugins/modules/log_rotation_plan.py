#!/usr/bin/python3
"""Ansible module opsplay.ops.log_rotation_plan:
the declared log sets of roles/log_rotation, checked and completed.

What it decides and does, its options and its results: DOCUMENTATION and RETURN below.
"""

from __future__ import annotations

import re

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: log_rotation_plan
short_description: Check declared logrotate sets and complete them with defaults and presets
description:
  - The first task of the C(log_rotation) role. Decides, before any file of the host is
    touched, whether the declared log sets can be written as logrotate blocks, and returns each
    set completed - the role's defaults, then the keys of the set's preset, then the set's own
    keys - split into the sets to install (RV(present)) and the sets to remove (RV(absent)).
  - Every set is checked. Names are letters, digits, V(_) and V(-), each declared once; the
    preset exists; a present set has paths; paths are absolute and hold no double quote, brace
    or line break (which would end the quoted pattern or open or close a block).
  - One-line values (C(size), C(maxsize), C(minsize), C(su), C(create) and each item of
    C(options)) hold no line break and no brace, which would end the set's block and start new
    configuration; an option that opens or closes a script (C(postrotate), C(firstaction),
    C(endscript), ...) is refused too, one line cannot hold a script.
  - C(prerotate) and C(postrotate) hold no line whose first word is C(endscript) (logrotate ends
    the script there and reads the rest as configuration, so C(endscript) / C(}) / C(PATH {)
    would inject a set that passes logrotate's own check) and no line that is only C({) or
    C(}).
  - Any problem fails the module with one line naming each set and what is wrong with it (the
    same problems as a list in RV(problems)).
  - Pure computation on the module's arguments; reads and writes no file, runs no command and
    needs no privileges. Never changes anything (RV(changed) is always false), in check mode
    exactly the same.
options:
  sets:
    description:
      - The declared log sets (the role's C(log_rotation_sets)), each a dict with at least
        C(name); every other key is optional and taken from the preset or O(defaults).
      - Keys checked here are C(name), C(state) (V(present) or V(absent)), C(preset), C(paths),
        C(size), C(maxsize), C(minsize), C(su), C(create), C(options), C(prerotate) and
        C(postrotate); other keys (C(frequency), C(rotate), C(compress), ...) are passed through.
    type: list
    elements: dict
    required: true
  defaults:
    description:
      - Keys every set starts from (the role's C(__log_rotation_set_defaults)); its C(preset)
        is the preset of sets that name none (V(app) when it has none either).
    type: dict
    required: true
  presets:
    description:
      - Preset name to the keys it sets on top of O(defaults) (the role's
        C(__log_rotation_presets), e.g. V(app) and V(nginx)). A set naming a preset not in this
        dict is a problem.
    type: dict
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
author: opsplay
"""

EXAMPLES = r"""
- name: Check the declared log sets
  opsplay.ops.log_rotation_plan:
    sets: "{{ log_rotation_sets }}"
    defaults: "{{ __log_rotation_set_defaults }}"
    presets: "{{ __log_rotation_presets }}"
  register: log_rotation_plan

- name: Check two sets against explicit defaults and presets
  opsplay.ops.log_rotation_plan:
    sets:
      - name: app
        paths: [/var/log/app/*.log]
        rotate: 14
        postrotate: systemctl kill --signal=USR1 app.service
      - name: old-app
        state: absent
    defaults:
      state: present
      preset: app
      paths: []
      frequency: daily
      rotate: 30
      compress: true
    presets:
      app: {}
  register: log_rotation_plan
"""

RETURN = r"""
present:
  description:
    - The sets whose C(state) is V(present) (or unset), in declaration order, each with
      O(defaults), then its preset's keys, then its own keys applied.
  returned: success
  type: list
  elements: dict
  sample:
    - name: app
      state: present
      preset: app
      paths: [/var/log/app/*.log]
      frequency: daily
      rotate: 14
      compress: true
      postrotate: systemctl kill --signal=USR1 app.service
absent:
  description: The sets whose C(state) is V(absent), completed the same way.
  returned: success
  type: list
  elements: dict
  sample:
    - name: old-app
      state: absent
      preset: app
      paths: []
problems:
  description:
    - Every problem of the completed sets, in declaration order, each once (also joined into
      C(msg), after V(log_rotation_sets:)).
  returned: failure
  type: list
  elements: str
  sample:
    - >-
      log set 'app': postrotate line 2 'endscript' would end the script there and make the
      rest of the value logrotate configuration
    - log set name 'app' is declared more than once
"""

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


def main():
    module = AnsibleModule(
        argument_spec={
            "sets": {"type": "list", "elements": "dict", "required": True},
            "defaults": {"type": "dict", "required": True},
            "presets": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    presets = module.params["presets"]
    merged = merge(module.params["sets"], module.params["defaults"], presets)
    found = problems(merged, presets)
    if found:
        module.fail_json(msg="log_rotation_sets: " + "; ".join(found), problems=found)
    module.exit_json(
        changed=False,
        present=[s for s in merged if s.get("state", "present") == "present"],
        absent=[s for s in merged if s.get("state") == "absent"],
    )


if __name__ == "__main__":
    main()
