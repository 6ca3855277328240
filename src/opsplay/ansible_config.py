"""Which Ansible configuration a run uses: the team's wins, opsplay's tuning is the default.

A team brings its own ``ansible.cfg`` (remote_user, a bastion in ssh_args, become settings,
callbacks such as ARA or profile_tasks). It is found where Ansible users keep it:
``ANSIBLE_CONFIG``, then ``./ansible.cfg``, then ``INVENTORY_DIR/ansible.cfg`` (beside the
environments). When there is one, the run reads it (``ANSIBLE_CONFIG``, so Ansible itself
resolves its relative paths) and opsplay passes each of its own settings (``ansible.cfg`` at the
content root: forks, fact gathering, timeouts, pipelining, inventory strictness...) as an
``ANSIBLE_*`` variable only where neither the team's file nor the caller's environment sets that
key. Paths opsplay's content needs are joined rather than replaced: its roles, its callback
directory (``opsplay_prefork``) and its collection come first, the team's after; the callbacks
the team enables run next to opsplay's. Without a team file, opsplay's ``ansible.cfg`` is the
run's, as before.

``opsplay config`` prints the result, each setting with where it comes from.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opsplay.errors import OpsplayError

# opsplay's own settings (section, key in its ansible.cfg) -> the variable that sets the same
# thing in ansible-core 2.19 (its config definitions; tests/unit/test_ansible_config.py checks
# each name against `ansible-config`).
ENV_NAMES: dict[tuple[str, str], str] = {
    ("defaults", "gathering"): "ANSIBLE_GATHERING",
    ("defaults", "forks"): "ANSIBLE_FORKS",
    ("defaults", "retry_files_enabled"): "ANSIBLE_RETRY_FILES_ENABLED",
    ("defaults", "interpreter_python"): "ANSIBLE_PYTHON_INTERPRETER",
    ("defaults", "nocows"): "ANSIBLE_NOCOWS",
    ("defaults", "timeout"): "ANSIBLE_TIMEOUT",
    ("defaults", "strategy"): "ANSIBLE_STRATEGY",
    ("inventory", "unparsed_is_failed"): "ANSIBLE_INVENTORY_UNPARSED_FAILED",
    ("inventory", "any_unparsed_is_failed"): "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED",
    ("ssh_connection", "pipelining"): "ANSIBLE_PIPELINING",
    ("ssh_connection", "ssh_args"): "ANSIBLE_SSH_ARGS",
}
# paths and lists both sides need: opsplay's first, the team's after
JOINED: dict[tuple[str, str], str] = {
    ("defaults", "roles_path"): "ANSIBLE_ROLES_PATH",
    ("defaults", "callback_plugins"): "ANSIBLE_CALLBACK_PLUGINS",
    ("defaults", "callbacks_enabled"): "ANSIBLE_CALLBACKS_ENABLED",
    ("defaults", "collections_path"): "ANSIBLE_COLLECTIONS_PATH",
    ("defaults", "strategy_plugins"): "ANSIBLE_STRATEGY_PLUGINS",
}
_LISTS = {"ANSIBLE_CALLBACKS_ENABLED"}  # comma-separated; the others are os.pathsep paths


@dataclass(frozen=True)
class Setting:
    name: str  # the ANSIBLE_* variable
    value: str
    source: str  # "opsplay (PATH)", "team ansible.cfg (PATH)", "environment", or both joined


@dataclass(frozen=True)
class AnsibleConfig:
    """The environment a run gets (``env``) and, for ``opsplay config``, every setting with
    where it comes from."""

    config_file: Path
    team_file: Path | None
    env: dict[str, str]
    settings: tuple[Setting, ...]


def team_config_file(
    inventory_dir: Path | None, environ: Mapping[str, str], own_file: Path | None = None
) -> Path | None:
    """The team's ansible.cfg: ANSIBLE_CONFIG, ./ansible.cfg, INVENTORY_DIR/ansible.cfg; never
    ``own_file`` (run from opsplay's checkout, its ./ansible.cfg is opsplay's own)."""
    explicit = environ.get("ANSIBLE_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise OpsplayError(f"ANSIBLE_CONFIG={explicit} is not a file")
        return path.resolve()
    candidates = [Path.cwd() / "ansible.cfg"]
    if inventory_dir is not None:
        candidates.append(inventory_dir / "ansible.cfg")
    for candidate in candidates:
        if candidate.is_file() and (own_file is None or candidate.resolve() != own_file.resolve()):
            return candidate.resolve()
    return None


def resolve(
    own_file: Path,
    own_paths: Mapping[str, list[str]],
    inventory_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    own_extra: Mapping[tuple[str, str], str] | None = None,
) -> AnsibleConfig:
    """The configuration of a run. ``own_paths``: the paths opsplay's content needs per joined
    variable (roles, callback directory, collections, strategy plugins, its callback), which
    come first whatever the team sets. ``own_extra``: opsplay's settings chosen at run time
    (the strategy), defaults like those of its file."""
    environ = os.environ if environ is None else environ
    team = team_config_file(inventory_dir, environ, own_file)
    if team is not None and team == own_file.resolve():
        team = None  # ANSIBLE_CONFIG naming opsplay's own file
    own = {**_read(own_file), **(own_extra or {})}
    theirs = _read(team) if team else {}
    env: dict[str, str] = {}
    settings: list[Setting] = []
    own_label = f"opsplay ({own_file})"
    team_label = f"team ansible.cfg ({team})"
    for key, name in ENV_NAMES.items():
        if name in environ:
            settings.append(Setting(name, environ[name], "environment"))
        elif key in theirs:
            settings.append(Setting(name, theirs[key], team_label))
        elif key in own:
            chosen = key in (own_extra or {})
            settings.append(Setting(name, own[key], "opsplay (run time)" if chosen else own_label))
            if team or key in (own_extra or {}):  # not in the file the run reads: a variable
                env[name] = own[key]
    for key, name in JOINED.items():
        sep = "," if name in _LISTS else os.pathsep
        ours = list(own_paths.get(name, []))
        if name in environ:
            rest, where = _split(environ[name], sep), "environment"
        elif key in theirs and team is not None:
            rest, where = _split(theirs[key], sep, base=team.parent, paths=sep != ","), team_label
        else:
            rest, where = _default_rest(key, own, own_file, sep), own_label
        value = sep.join(dict.fromkeys(ours + rest))
        if value:
            env[name] = value
            joined = "opsplay" if where == own_label else f"opsplay + {where}"
            settings.append(Setting(name, value, joined if rest else "opsplay"))
    return AnsibleConfig(
        config_file=team or own_file,
        team_file=team,
        env={"ANSIBLE_CONFIG": str(team or own_file), **env},
        settings=tuple(settings),
    )


def _default_rest(key: tuple[str, str], own: dict, own_file: Path, sep: str) -> list[str]:
    """What opsplay's own file adds after its content's paths (e.g. the collections path's
    user and system directories), relative paths made absolute."""
    if key not in own:
        return []
    return _split(own[key], sep, base=own_file.parent, paths=sep != ",")


def _split(text: str, sep: str, base: Path | None = None, paths: bool = False) -> list[str]:
    items = [item.strip() for item in text.replace("\n", sep).split(sep) if item.strip()]
    if paths and base is not None:
        items = [
            item if os.path.isabs(os.path.expanduser(item)) else str(base / item) for item in items
        ]
    return items


def _read(path: Path | None) -> dict[tuple[str, str], str]:
    if path is None:
        return {}
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OpsplayError(f"cannot read Ansible configuration {path}: {first}") from None
    return {
        (section, key): value
        for section in parser.sections()
        for key, value in parser.items(section, raw=True)
    }
