"""Every module of opsplay.ops is documented as Ansible's own modules are (issue 19).

For each file of plugins/modules (found by glob, so a new module is covered the day it appears):
DOCUMENTATION, EXAMPLES and RETURN exist and are YAML, in the module's sidecar NAME.yml (what
Ansible's ansible-doc reads beside it; the module then ships to the host without them) or in the
module itself; DOCUMENTATION names the module by its
file name and documents exactly the options its argument_spec has (same type, required,
default, choices, elements); every EXAMPLES task calls the module by its FQCN with documented
options only; every RETURN key says what it is, when it is returned and its type; and
ansible-doc renders the module from a plain collections path.

The argument_spec is the one the module really builds: main() runs with AnsibleModule's
constructor replaced by one that records its arguments and stops the module there, so no host,
no stdin and no side effect is involved.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "collections"
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem[0] != "_")
FQCN = "opsplay.ops."


class _Stop(BaseException):
    """Raised by the recording AnsibleModule: main() gets no further than its constructor (a
    BaseException, so that no ``except Exception`` of a module swallows it)."""


def load(name):
    return importlib.import_module("ansible_collections.opsplay.ops.plugins.modules." + name)


SECTIONS = ("DOCUMENTATION", "EXAMPLES", "RETURN")


def docs(name):
    """(DOCUMENTATION, EXAMPLES, RETURN) of the module, each parsed as YAML: from its sidecar
    plugins/modules/NAME.yml when it has one (then the module itself holds none of them, so the
    host never receives them), else from the module's constants."""
    module = load(name)
    sidecar = REPO / "plugins" / "modules" / f"{name}.yml"
    if sidecar.exists():
        inline = [c for c in SECTIONS if hasattr(module, c)]
        assert not inline, f"{name} has {', '.join(inline)} in both {name}.py and {name}.yml"
        try:
            found = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            pytest.fail(f"{name}.yml is not YAML: {exc}")
        texts = {c: found.get(c) for c in SECTIONS}
        texts["EXAMPLES"] = texts["EXAMPLES"] if isinstance(texts["EXAMPLES"], str) else None
    else:
        texts = {c: getattr(module, c, None) for c in SECTIONS}
    parsed = []
    for constant in SECTIONS:
        text = texts[constant]
        if isinstance(text, dict):  # a sidecar's DOCUMENTATION and RETURN are YAML already
            parsed.append(text)
            continue
        assert isinstance(text, str) and text.strip(), f"{name} has no {constant}"
        try:
            parsed.append(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            pytest.fail(f"{name}'s {constant} is not YAML: {exc}")
    return tuple(parsed)


def argument_spec(name, monkeypatch):
    """The argument_spec main() passes to AnsibleModule."""
    seen = {}

    def record(self, *args, **kwargs):
        seen["spec"] = kwargs["argument_spec"] if "argument_spec" in kwargs else args[0]
        raise _Stop

    monkeypatch.setattr(basic.AnsibleModule, "__init__", record)
    with pytest.raises(_Stop):
        load(name).main()
    return seen["spec"]


def option_differences(documented, spec, prefix=""):
    """How the documented options differ from the argument_spec, one line each."""
    found = []
    documented, spec = documented or {}, spec or {}
    for option in sorted(set(documented) ^ set(spec)):
        where = "documented, not in argument_spec" if option in documented else "undocumented"
        found.append(f"option {prefix}{option}: {where}")
    for option in sorted(set(documented) & set(spec)):
        doc, arg = documented[option] or {}, spec[option] or {}
        label = prefix + option
        if not doc.get("description"):
            found.append(f"option {label}: no description")
        wanted = {
            "type": (doc.get("type", "str"), arg.get("type", "str")),
            "required": (bool(doc.get("required")), bool(arg.get("required"))),
            "default": (doc.get("default"), arg.get("default")),
            "choices": (doc.get("choices"), arg.get("choices")),
            "elements": (doc.get("elements"), arg.get("elements")),
        }
        for key, (in_doc, in_spec) in wanted.items():
            if callable(in_spec) or in_doc == in_spec:
                continue
            found.append(f"option {label}: {key} {in_doc!r} documented, {in_spec!r} in spec")
        if doc.get("suboptions") or arg.get("options"):
            found += option_differences(doc.get("suboptions"), arg.get("options"), label + ".")
    return found


@pytest.fixture(scope="module")
def rendered():
    """ansible-doc's JSON of every module, from one call (a module it cannot render is absent)."""
    done = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "module", "--json", *(FQCN + m for m in MODULES)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS)},
        cwd="/",  # no ansible.cfg of the checkout
    )
    return json.loads(done.stdout or "{}"), done.stderr


def test_every_module_file_is_found():
    assert "log_rotation_plan" in MODULES and "pg_backup_restore" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_documentation_names_the_module_and_says_what_it_does(name):
    documentation, _, _ = docs(name)
    assert isinstance(documentation, dict), f"{name}'s DOCUMENTATION is not a mapping"
    assert documentation.get("module") == name
    required = ("short_description", "description", "author")
    missing = [key for key in required if not documentation.get(key)]
    assert not missing, f"{name}'s DOCUMENTATION lacks {', '.join(missing)}"


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_are_the_argument_spec(name, monkeypatch):
    documentation, _, _ = docs(name)
    spec = argument_spec(name, monkeypatch)
    differences = option_differences(documentation.get("options"), spec)
    assert not differences, f"{name}: " + "; ".join(differences)


@pytest.mark.parametrize("name", MODULES)
def test_examples_are_tasks_calling_the_module_with_documented_options(name):
    documentation, examples, _ = docs(name)
    assert isinstance(examples, list) and examples, f"{name}'s EXAMPLES is not a list of tasks"
    options = set(documentation.get("options") or {})
    for task in examples:
        assert isinstance(task, dict) and task.get("name"), f"{name}: unnamed example {task!r}"
        assert FQCN + name in task, f"{name}: example {task['name']!r} does not call {FQCN}{name}"
        args = task[FQCN + name]
        if isinstance(args, dict):  # else a templated bundle ("{{ __pg_backup_login }}")
            unknown = sorted(set(args) - options)
            assert not unknown, f"{name}: example {task['name']!r} passes unknown {unknown}"


@pytest.mark.parametrize("name", MODULES)
def test_return_says_what_when_and_which_type_for_every_key(name):
    _, _, returned = docs(name)
    assert isinstance(returned, dict) and returned, f"{name}'s RETURN documents no key"
    fields = ("description", "returned", "type")
    incomplete = {
        key: [field for field in fields if not (value or {}).get(field)]
        for key, value in returned.items()
    }
    lacking = {key: missing for key, missing in incomplete.items() if missing}
    assert not lacking, f"{name}'s RETURN lacks {lacking}"


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders_the_module(name, rendered):
    found, stderr = rendered
    entry = found.get(FQCN + name)
    assert entry, f"ansible-doc did not render {FQCN}{name}: {stderr.strip()}"
    assert entry["doc"]["module"] == name
    assert entry["examples"] and entry["return"]
