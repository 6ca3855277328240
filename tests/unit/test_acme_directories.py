"""No non-production inventory may resolve the ACME directory to a production CA.

Tests and staging must never burn production rate limits (or get real certificates issued by
accident). Every inventory under inventories/ except the production ones (prod, production) is
read - group_vars and host_vars (files and directories) and variables inline in hosts.yml - and
every value of ``cert_renewal_acme_directory`` found, plus the role default that applies where
none is set, must not be a production ACME directory. ``{{ other_var }}`` indirections are
followed inside the inventory; a value that cannot be resolved statically fails the test.
Vault-encrypted files are skipped (an ACME directory is no secret).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = REPO / "inventories"
ROLE_DEFAULTS = REPO / "roles" / "cert_renewal" / "defaults" / "main.yml"
VAR = "cert_renewal_acme_directory"
PRODUCTION_ENVS = {"prod", "production"}

# Hosts of production ACME directories (their staging twins are allowed).
PRODUCTION_HOSTS = {
    "acme-v01.api.letsencrypt.org",
    "acme-v02.api.letsencrypt.org",
    "acme.zerossl.com",
    "api.buypass.com",
    "dv.acme-v02.api.pki.goog",
    "acme.ssl.com",
}
# Hosts of staging ACME directories: what dev and staging must use.
STAGING_HOSTS = {
    "acme-staging-v02.api.letsencrypt.org",
    "api.test4.buypass.no",
    "dv.acme-v02.test-api.pki.goog",
}
REFERENCE = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")


def _load(path: Path) -> object:
    text = path.read_text()
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        return None
    return yaml.safe_load(text)


def _vars_files(inventory: Path) -> list[Path]:
    files = []
    for kind in ("group_vars", "host_vars"):
        base = inventory / kind
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            if entry.is_dir():
                files += sorted(p for p in entry.rglob("*") if p.is_file())
            elif entry.suffix in ("", ".yml", ".yaml", ".json"):
                files.append(entry)
    return files


def _inline_vars(node: object, where: str) -> list[tuple[str, dict]]:
    """Variables written in a YAML inventory: group ``vars`` and per-host mappings."""
    found: list[tuple[str, dict]] = []
    if not isinstance(node, dict):
        return found
    for name, group in node.items():
        if not isinstance(group, dict):
            continue
        if isinstance(group.get("vars"), dict):
            found.append((f"{where} group {name} vars", group["vars"]))
        for host, host_vars in (group.get("hosts") or {}).items():
            if isinstance(host_vars, dict):
                found.append((f"{where} host {host}", host_vars))
        found += _inline_vars(group.get("children"), where)
    return found


def inventory_vars(inventory: Path) -> list[tuple[str, dict]]:
    """Every variable mapping of one inventory, with where it comes from."""
    mappings: list[tuple[str, dict]] = []
    for path in _vars_files(inventory):
        data = _load(path)
        if isinstance(data, dict):
            mappings.append((str(path.relative_to(inventory.parent)), data))
    for name in ("hosts.yml", "hosts.yaml"):
        path = inventory / name
        if path.is_file():
            mappings += _inline_vars(_load(path), str(path.relative_to(inventory.parent)))
    return mappings


def role_default() -> str:
    return yaml.safe_load(ROLE_DEFAULTS.read_text())[VAR]


def resolve(value: object, mappings: list[tuple[str, dict]], seen: tuple = ()) -> list[str]:
    """The values a setting can resolve to, following {{ var }} indirections in the inventory."""
    if not isinstance(value, str):
        raise AssertionError(f"{VAR} must be a string, got {value!r}")
    match = REFERENCE.match(value)
    if match is None:
        if "{{" in value or "{%" in value:
            raise AssertionError(f"{VAR} = {value!r} cannot be resolved statically")
        return [value]
    name = match.group(1)
    if name in seen:
        raise AssertionError(f"{VAR}: circular reference through {name}")
    targets = [m[name] for _, m in mappings if name in m]
    if not targets:
        raise AssertionError(f"{VAR} = {value!r}: {name} is not defined in the inventory")
    return [v for t in targets for v in resolve(t, mappings, (*seen, name))]


def resolved_directories(inventory: Path) -> list[tuple[str, str]]:
    """(where, URL) for every value the variable can take on a host of this inventory."""
    mappings = inventory_vars(inventory)
    out = [("roles/cert_renewal/defaults/main.yml", role_default())]
    for where, mapping in mappings:
        if VAR in mapping:
            out += [(where, url) for url in resolve(mapping[VAR], mappings)]
    return out


def is_production(url: str) -> bool:
    return (urlparse(url.strip()).hostname or "").lower() in PRODUCTION_HOSTS


def non_production_inventories() -> list[Path]:
    return sorted(p for p in INVENTORIES.iterdir() if p.is_dir() and p.name not in PRODUCTION_ENVS)


def test_the_expected_inventories_are_read():
    names = {p.name for p in non_production_inventories()}
    assert {"dev", "staging", "lab"} <= names


def test_role_default_is_not_production():
    assert not is_production(role_default()), role_default()


@pytest.mark.parametrize("inventory", non_production_inventories(), ids=lambda p: p.name)
def test_inventory_never_resolves_to_a_production_acme_directory(inventory):
    bad = [
        f"{where}: {url}" for where, url in resolved_directories(inventory) if is_production(url)
    ]
    assert not bad, f"{inventory.name} resolves {VAR} to a production ACME directory: {bad}"


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_dev_and_staging_set_a_staging_directory_explicitly(env):
    found = [
        (w, u) for w, u in resolved_directories(INVENTORIES / env) if not w.startswith("roles/")
    ]
    assert found, f"{env} does not set {VAR}"
    for where, url in found:
        assert urlparse(url).hostname in STAGING_HOSTS, f"{where}: {url} is not a staging directory"


def test_playbooks_do_not_set_the_directory():
    for playbook in sorted((REPO / "playbooks").glob("*.yml")):
        assert VAR not in playbook.read_text(), f"{playbook.name} sets {VAR}"


# The detector itself: production values hidden in each place an inventory can hold them.
@pytest.mark.parametrize(
    ("relpath", "content"),
    [
        ("group_vars/all.yml", f"{VAR}: https://acme-v02.api.letsencrypt.org/directory\n"),
        ("group_vars/web_servers/acme.yml", f"{VAR}: 'https://acme.zerossl.com/v2/DV90'\n"),
        ("host_vars/web1.yml", f"{VAR}: https://ACME-V02.api.letsencrypt.org/directory\n"),
        (
            "hosts.yml",
            "all:\n  children:\n    web_servers:\n      hosts:\n        web1:\n"
            f"          {VAR}: https://acme-v02.api.letsencrypt.org/directory\n",
        ),
        (
            "group_vars/all.yml",
            "acme_url: https://acme-v02.api.letsencrypt.org/directory\n"
            f"{VAR}: '{{{{ acme_url }}}}'\n",
        ),
    ],
)
def test_detector_finds_production_directories(tmp_path, relpath, content):
    path = tmp_path / "inv" / relpath
    path.parent.mkdir(parents=True)
    path.write_text(content)
    urls = [url for _, url in resolved_directories(tmp_path / "inv")]
    assert any(is_production(url) for url in urls), urls


def test_detector_refuses_unresolvable_templates(tmp_path):
    path = tmp_path / "inv" / "group_vars" / "all.yml"
    path.parent.mkdir(parents=True)
    path.write_text(f"{VAR}: \"{{{{ lookup('env', 'ACME') }}}}\"\n")
    with pytest.raises(AssertionError, match="cannot be resolved statically"):
        resolved_directories(tmp_path / "inv")
