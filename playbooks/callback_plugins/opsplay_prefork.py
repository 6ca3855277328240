"""Load, once and before Ansible forks its workers, what every worker would otherwise load alone.

Ansible runs each task on each host in a worker process forked from ansible-playbook. A worker
starts with what the parent had loaded and throws away what it loads itself. The parent never
templates task arguments, so every worker looked up the Jinja filter and test plugins from
scratch (importing the plugin files and scanning ansible.builtin for Jinja's own filters), and,
under Mitogen, imported the collection index for each collection module it ran. Measured on the
lab (8 hosts, weekly window): ~870 workers, each paying that again.

This notification callback does that work once in the parent when the first play starts, so the
workers inherit it (copy-on-write), then freezes what is loaded for the garbage collector
(``_freeze``: forked processes keep sharing those pages). Under Mitogen it also turns off
Mitogen's CPU pinning before the strategy applies it (``_unpinned``).

It changes no result: it only loads what the workers load anyway. Any failure is shown with
-vvv and ignored. opsplay's ansible.cfg names this directory (callback_plugins) and enables it
(callbacks_enabled); stock settings do not run it.
"""

from __future__ import annotations

import importlib
import time

from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display

DOCUMENTATION = """
    name: opsplay_prefork
    type: aggregate
    short_description: load plugins once in ansible-playbook before the workers fork
    description:
      - Loads the Jinja filter, test and lookup plugins and, under Mitogen, the collection index
        in the controller process when the first play starts, so the per-task worker processes
        inherit them instead of each loading them again.
    requirements:
      - enabled in ansible.cfg (callbacks_enabled)
"""

display = Display()

# Modules the workers import when they decode module results; loaded here once.
_WORKER_IMPORTS = ("ansible.module_utils._internal._json._profiles._module_legacy_m2c",)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "opsplay_prefork"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._done = False

    def v2_playbook_on_play_start(self, play: object) -> None:
        if self._done:
            return
        self._done = True
        started = time.monotonic()
        for step in _STEPS:
            try:
                step()
            except Exception as exc:  # a speed-up only: never fail or change a run
                display.vvv(f"opsplay_prefork: {step.__name__} skipped: {exc}")
        display.vvv(f"opsplay_prefork: plugins loaded in {time.monotonic() - started:.2f} s")


def _jinja_plugins() -> None:
    """Template one string naming every filter and test inside `{% if false %}`: compiling
    it looks each one up, and nothing in it runs."""
    import jinja2.filters
    import jinja2.tests
    from ansible.plugins.loader import filter_loader, test_loader
    from ansible.template import Templar, trust_as_template

    filters = set(jinja2.filters.FILTERS)
    tests = set(jinja2.tests.TESTS)
    filters.update(p.ansible_name.rsplit(".", 1)[-1] for p in filter_loader.all())
    tests.update(p.ansible_name.rsplit(".", 1)[-1] for p in test_loader.all())
    names = [n for n in sorted(filters) if n.isidentifier()]
    checks = [n for n in sorted(tests) if n.isidentifier()]
    source = (
        "{% if false %}"
        + "".join(f"{{{{ 0 | {n} }}}}" for n in names)
        + "".join(f"{{{{ 0 is {n} }}}}" for n in checks)
        + "{% endif %}"
    )
    Templar(loader=None).template(trust_as_template(source))


def _lookup_plugins() -> None:
    from ansible.plugins.loader import lookup_loader

    # roles call them by FQCN (ansible.builtin.env), which resolves through the collection path
    for plugin in lookup_loader.all(class_only=True):
        lookup_loader.get(f"ansible.builtin.{plugin._load_name}", class_only=True)


def _collection_index() -> None:
    """List the installed collections once, for every module Mitogen's workers run.

    ansible_mitogen's planner lists the installed collections (each one's MANIFEST.json or
    galaxy.yml, ~95 with the `ansible` package) the first time a worker runs each collection
    module, and every worker is a new process: measured at 2 lab hosts, the weekly window's
    workers spent ~27 % of their CPU on it. The listing cannot change while the playbook runs
    (no task installs collections), so the planner gets the one made here, the same paths in the
    same order; the workers inherit it."""
    from ansible import constants as C

    if not str(C.DEFAULT_STRATEGY).startswith("mitogen"):
        return
    from ansible.collections.list import list_collection_dirs
    from ansible_mitogen import planner

    if not callable(getattr(planner, "_load_collections", None)):
        return  # another Mitogen: leave its planner as it is
    paths = tuple(path.decode("utf-8") for path in list_collection_dirs())

    def _load_collections(invocation: object) -> None:
        invocation._extra_sys_paths.update(paths)  # type: ignore[attr-defined]

    planner._load_collections = _load_collections


def _worker_imports() -> None:
    for name in _WORKER_IMPORTS:
        importlib.import_module(name)


def _unpinned() -> None:
    """Leave CPU placement to the kernel under Mitogen.

    ansible_mitogen pins its processes to fixed CPUs (``ansible_mitogen.affinity``), a scheme its
    authors tested on an idle 16-thread machine. Below 4 CPUs it puts the multiplexer on CPU 0,
    ansible-playbook and every worker on CPU 1, and the commands they start (ssh, ``podman
    exec``) on CPU 1 too; a process started through ``podman exec`` keeps that mask inside the
    container. On the 2-core lab the backup module, its pg_dump and the restore test's
    pg_restore all shared one core, while the other waited for the multiplexer. Mitogen's null
    policy (``Policy``, what it uses where it cannot pin) pins nothing; the strategy reads
    ``affinity.policy`` when it starts, after this."""
    from ansible import constants as C

    if not str(C.DEFAULT_STRATEGY).startswith("mitogen"):
        return
    from ansible_mitogen import affinity

    affinity.policy = affinity.Policy()


def _freeze() -> None:
    """Move everything loaded so far out of the garbage collector's reach (gc.freeze): a
    collection in a forked process then no longer writes to the parent's objects, so their
    pages stay shared instead of being copied. This matters most for Mitogen's connection
    multiplexer, forked from this process when the strategy starts and alive for the whole run:
    at 4 lab hosts its PSS fell from 72-82 to 57-68 MiB, the run's peak from 230-243 to 216-227
    MiB. What is frozen here lives as long as ansible-playbook anyway (plugins, configuration)."""
    import gc

    gc.freeze()


# in this order; _freeze last, once everything is loaded
_STEPS = (_jinja_plugins, _lookup_plugins, _collection_index, _worker_imports, _unpinned, _freeze)
