"""What a run was asked to do: the shared options, validated (``-e`` values parsed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsplay.errors import OpsplayError
from opsplay.options import require_env


@dataclass
class RunOptions:
    env: str | None = None
    limit: str | None = None
    check: bool = False
    diff: bool = False
    tags: str | None = None
    skip_tags: str | None = None
    extra_vars: tuple[str, ...] = ()
    forks: int | None = None
    verbosity: int = 0
    as_json: bool = False
    yes: bool = False
    vault_password_file: str | None = None
    notify_url: str | None = None
    strategy: str = "auto"
    notify_on: str = "failure"
    notify_format: str = "json"
    outside_window: str | None = None  # the reason to run outside the calendar's windows
    extravars: dict[str, Any] = field(default_factory=dict)
    extravar_files: list[Path] = field(default_factory=list)

    @classmethod
    def from_click(cls, **kwargs: Any) -> RunOptions:
        options = cls(**kwargs)
        options.env = require_env(options.env)
        options.extravars, options.extravar_files = parse_extra_vars(options.extra_vars)
        if options.notify_url and not options.notify_url.startswith(("http://", "https://")):
            raise OpsplayError("--notify-url must be an http:// or https:// URL")
        if options.outside_window is not None and not options.outside_window.strip():
            raise OpsplayError("--outside-window needs a reason (it goes to the logs)")
        if options.vault_password_file and not Path(options.vault_password_file).is_file():
            raise OpsplayError(f"vault password file {options.vault_password_file} not found")
        return options


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_extra_vars(items: tuple[str, ...]) -> tuple[dict[str, Any], list[Path]]:
    """``key=value`` pairs, ``@file`` (YAML/JSON, passed to Ansible as is) or an inline mapping."""
    import yaml

    values: dict[str, Any] = {}
    files: list[Path] = []
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            files.append(_check_vars_file(path))
        elif item.lstrip().startswith("{"):
            try:
                mapping = yaml.safe_load(item)
            except yaml.YAMLError:
                mapping = None
            if not isinstance(mapping, dict):
                raise OpsplayError(f"malformed extra vars '{item}': not a valid mapping")
            values.update(mapping)
        else:
            for pair in item.split():
                key, sep, value = pair.partition("=")
                if not sep or not _KEY.match(key):
                    raise OpsplayError(f"malformed extra var '{pair}': expected KEY=VALUE or @FILE")
                values[key] = value
    return values, files


def _check_vars_file(path: Path) -> Path:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OpsplayError(f"extra vars file {path}: {exc.strerror}") from None
    if text.startswith("$ANSIBLE_VAULT"):
        return path.resolve()  # vault-encrypted: Ansible decrypts it
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise OpsplayError(f"malformed extra vars file {path}{where}") from None
    if not isinstance(data, dict):
        raise OpsplayError(f"extra vars file {path} must hold a mapping")
    return path.resolve()
