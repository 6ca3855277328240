"""opsplay_prefork: opsplay's runs load it, and it loads the plugins before the workers fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from opsplay.content import ansible_cfg, playbooks_dir
from opsplay.execute import run_configuration
from opsplay.settings import Settings
from opsplay.state import private_dir
from opsplay.strategy import choose

REPO = Path(__file__).resolve().parents[2]
PLUGINS = playbooks_dir() / "callback_plugins"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

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

Probe = Callable[..., dict]


@pytest.fixture
def playbook(tmp_path) -> Path:
    """A one-task playbook on localhost in tmp_path."""
    path = tmp_path / "play.yml"
    path.write_text(
        "- hosts: localhost\n  gather_facts: false\n"
        "  tasks:\n    - ansible.builtin.debug:\n        msg: hi\n"
    )
    return path


@pytest.fixture
def stock_env() -> dict[str, str]:
    """This process's environment without any ANSIBLE_ setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}


@pytest.fixture
def probe() -> Probe:
    """Run a probe script in a fresh Python with opsplay's ansible.cfg and callback plugins (and
    ``extra_env``), from the repository; the JSON it prints last, parsed."""

    def run(script: str, **extra_env: str) -> dict:
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ansible_cfg()),
            "ANSIBLE_CALLBACK_PLUGINS": str(PLUGINS),
            **extra_env,
        }
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=REPO,
        ).stdout
        return json.loads(out.splitlines()[-1])

    return run


def test_playbooks_beside_it_load_it_with_opsplays_settings_only(tmp_path, playbook, stock_env):
    # Ansible finds callback_plugins/ beside a playbook, as it does for opsplay's playbooks.
    (tmp_path / "callback_plugins").symlink_to(PLUGINS)

    def run(env: dict[str, str]) -> str:
        return subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook), "-vvv"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=tmp_path,
        ).stdout

    loaded = "opsplay_prefork: plugins loaded in"
    assert loaded in run({**stock_env, "ANSIBLE_CONFIG": str(ansible_cfg())})
    assert loaded not in run(stock_env)  # stock settings


def test_playbooks_elsewhere_find_it_through_opsplays_settings(tmp_path, playbook, stock_env):
    # playbooks/queries/ and any playbook outside playbooks/: ansible.cfg names the directory,
    # and opsplay's runs name it again (ansible-runner replaces ANSIBLE_CALLBACK_PLUGINS).
    settings = Settings(inventory_dir=str(REPO / "inventories"), state_dir=str(tmp_path / "s"))
    env = run_configuration(settings, private_dir(tmp_path / "s"), choose("auto")).env
    assert env["ANSIBLE_CALLBACK_PLUGINS"].split(os.pathsep)[0] == str(PLUGINS)
    assert env["ANSIBLE_CALLBACKS_ENABLED"].split(",")[0] == "opsplay_prefork"
    out = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook), "-vvv"],
        capture_output=True,
        text=True,
        check=True,
        env={**stock_env, "ANSIBLE_CONFIG": str(ansible_cfg())},
        cwd=tmp_path,
    )
    assert "opsplay_prefork: plugins loaded in" in out.stdout
    assert "unable to load" not in out.stdout + out.stderr


def test_worker_loads_nothing_more_after_the_callback(probe: Probe):
    result = probe(PROBE)
    assert any(name.startswith("ansible.plugins.filter.core") for name in result["warmed"])
    assert "ansible.plugins.lookup.env" in result["warmed"]
    assert result["after"] == []


# Under Mitogen: the planner's per-module collection listing comes from the parent's one listing,
# with the same paths, and lists nothing again.
MITOGEN_PROBE = """
import json
import ansible.collections.list as collections_list
from ansible.plugins.loader import callback_loader, init_plugin_loader
from ansible_mitogen import planner

init_plugin_loader()
expected = {p.decode("utf-8") for p in collections_list.list_collection_dirs()}
callback_loader.get("opsplay_prefork").v2_playbook_on_play_start(None)

def listed_again(*args, **kwargs):
    raise AssertionError("listed the collections again")

collections_list.list_collection_dirs = listed_again

class Invocation:
    _extra_sys_paths = set()

invocation = Invocation()
planner._load_collections(invocation)
print(json.dumps({"expected": sorted(expected), "got": sorted(invocation._extra_sys_paths)}))
"""


def test_mitogen_workers_reuse_the_parents_collection_listing(probe: Probe):
    strategy = choose("mitogen")
    result = probe(
        MITOGEN_PROBE,
        ANSIBLE_STRATEGY=strategy.name,
        ANSIBLE_STRATEGY_PLUGINS=str(strategy.plugin_dir),
    )
    assert result["expected"]  # the collections opsplay's roles use are installed
    assert result["got"] == result["expected"]


# After the callback, what the process had loaded is out of the garbage collector's reach (so
# a collection in a forked worker or Mitogen's multiplexer copies none of its pages); objects
# made afterwards are collected as usual.
FREEZE_PROBE = """
import gc, json
from ansible.plugins.loader import callback_loader, init_plugin_loader

init_plugin_loader()
before = gc.get_freeze_count()
callback_loader.get("opsplay_prefork").v2_playbook_on_play_start(None)
frozen = gc.get_freeze_count()
cycle = []
cycle.append(cycle)
tracked_later = gc.is_tracked(cycle)
print(json.dumps({"before": before, "frozen": frozen, "later": tracked_later,
                  "collected": gc.collect() >= 0 and gc.get_freeze_count() == frozen}))
"""


def test_what_was_loaded_is_frozen_for_the_garbage_collector(probe: Probe):
    result = probe(FREEZE_PROBE)
    assert result["before"] == 0
    assert result["frozen"] > 10_000  # ansible-core, Jinja and the plugins
    assert result["later"] and result["collected"]


CPUS_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.command: grep Cpus_allowed_list /proc/self/status
      register: cpus
      changed_when: false
    - ansible.builtin.debug:
        msg: "CPUS={{ cpus.stdout.split()[-1] }}"
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: nothing to pin apart")
def test_under_mitogen_a_module_may_run_on_every_cpu(tmp_path, stock_env):
    # Mitogen pins the commands it starts (on this 2-core lab: podman exec, and the module and
    # pg_dump inside the container) to the CPUs it keeps for them; with the callback the kernel
    # places them.
    playbook = tmp_path / "cpus.yml"
    playbook.write_text(CPUS_PLAYBOOK)
    strategy = choose("mitogen")

    def cpus(**callbacks: str) -> set[int]:
        out = subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook)],
            capture_output=True,
            text=True,
            check=True,
            env={
                **stock_env,
                "ANSIBLE_STRATEGY": strategy.name,
                "ANSIBLE_STRATEGY_PLUGINS": str(strategy.plugin_dir),
                "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                **callbacks,
            },
            cwd=tmp_path,
        ).stdout
        (listed,) = [
            line.split("CPUS=")[1].strip('"') for line in out.splitlines() if "CPUS=" in line
        ]
        return {
            cpu
            for part in listed.split(",")
            for first, _, last in [part.partition("-")]
            for cpu in range(int(first), int(last or first) + 1)
        }

    every = set(os.sched_getaffinity(0))
    assert cpus() < every  # Mitogen's pinning, stock settings
    enabled = {
        "ANSIBLE_CALLBACK_PLUGINS": str(PLUGINS),
        "ANSIBLE_CALLBACKS_ENABLED": "opsplay_prefork",
    }
    assert cpus(**enabled) == every
