"""opsplay_prefork: opsplay's runs load it, and it loads the plugins before the workers fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from opsplay.content import ansible_cfg, callback_plugins_dir
from opsplay.runner import _envvars
from opsplay.strategy import choose

REPO = Path(__file__).resolve().parents[2]

# In a fresh ansible-playbook-like process: which modules the callback leaves loaded, and whether
# a template using a filter, a test and a lookup then loads anything more (what a worker pays).
PROBE = """
import json, sys
from ansible.plugins.loader import callback_loader, init_plugin_loader
from ansible.template import Templar, trust_as_template

init_plugin_loader()
before = set(sys.modules)
callback = callback_loader.get("opsplay_prefork")
callback.v2_playbook_on_play_start(None)
warmed = set(sys.modules) - before
template = (
    "{{ [3, 1] | sort | join(',') }} {{ 'a' is match('a') }}"
    " {{ lookup('ansible.builtin.env', 'HOME') }}"
)
Templar(loader=None).template(trust_as_template(template))
print(json.dumps({"warmed": sorted(warmed), "after": sorted(set(sys.modules) - before - warmed)}))
"""


def test_opsplay_runs_enable_and_find_the_callback():
    env = _envvars(choose("auto"))
    assert env["ANSIBLE_CALLBACK_PLUGINS"] == str(callback_plugins_dir())
    assert (callback_plugins_dir() / "opsplay_prefork.py").is_file()
    dump = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-config"), "dump", "--only-changed"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ansible_cfg())},
    ).stdout
    assert "CALLBACKS_ENABLED" in dump and "opsplay_prefork" in dump


def test_worker_loads_nothing_more_after_the_callback():
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ansible_cfg()),
        "ANSIBLE_CALLBACK_PLUGINS": str(callback_plugins_dir()),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=REPO,
    ).stdout
    result = json.loads(out.splitlines()[-1])
    assert any(name.startswith("ansible.plugins.filter.core") for name in result["warmed"])
    assert "ansible.plugins.lookup.env" in result["warmed"]
    assert result["after"] == []
