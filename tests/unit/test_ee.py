"""The execution environment (opsplay.lab.ee, execution-environment.yml) runs what the CLI runs."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

from opsplay.lab import ee
from opsplay.lab.images import base_ref

REPO = Path(__file__).resolve().parents[2]


def ee_recipe() -> dict:
    return yaml.safe_load((REPO / "execution-environment.yml").read_text())


def test_versions_are_the_installed_ones_and_pyprojects_pin():
    pinned = ee.versions()
    assert pinned == {name: metadata.version(name) for name in ee.PACKAGES}
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"ansible=={pinned['ansible']}" in deps


def test_execution_environment_yml_states_the_same_versions():
    deps = ee_recipe()["dependencies"]
    pinned = ee.versions()
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={pinned['ansible-core']}"
    assert deps["ansible_runner"]["package_pip"] == f"ansible-runner=={pinned['ansible-runner']}"
    assert f"mitogen=={pinned['mitogen']}" in deps["python"]
    for extra in ee.EXTRA_REQUIREMENTS:
        assert extra in deps["python"]


def test_both_recipes_default_to_mitogens_strategy():
    final = ee_recipe()["additional_build_steps"]["append_final"]
    assert "ENV ANSIBLE_STRATEGY=mitogen_linear" in final
    containerfile = ee.containerfile().decode()
    assert "ANSIBLE_STRATEGY=mitogen_linear" in containerfile
    assert "ANSIBLE_STRATEGY_PLUGINS=/opt/opsplay-ee/mitogen-strategy" in containerfile


def test_containerfile_installs_every_pinned_package_from_its_build_arg():
    containerfile = ee.containerfile().decode()
    for name, arg in ee.PACKAGES.items():
        assert f"ARG {arg}\n" in containerfile
        assert f'"{name}==${{{arg}}}"' in containerfile
    # from the wheels in the build context only: no index, no credentials in the image
    assert "--no-index --find-links /tmp/wheels" in containerfile
    instructions = "\n".join(
        line for line in containerfile.splitlines() if not line.lstrip().startswith("#")
    )
    assert not re.search(r"ssh_key|id_ed25519|\bCOPY\b|\bADD\b", instructions)


def test_build_args_name_every_version():
    args = ee.build_args(
        {"ansible": "1", "ansible-core": "2", "ansible-runner": "3", "mitogen": "4"}
    )
    assert args == [
        "--build-arg",
        "ANSIBLE_VERSION=1",
        "--build-arg",
        "ANSIBLE_CORE_VERSION=2",
        "--build-arg",
        "ANSIBLE_RUNNER_VERSION=3",
        "--build-arg",
        "MITOGEN_VERSION=4",
    ]


def test_the_tag_follows_the_recipe():
    pinned = ee.versions()
    ref = ee.ee_ref(pinned)
    assert ref.startswith(f"{ee.EE_REPO}:") and ref == ee.ee_ref(dict(pinned))
    assert ee.ee_ref({**pinned, "mitogen": "0.0.1"}) != ref
    assert ee.ee_ref({**pinned, "ansible-core": "2.19.0"}) != ref
    assert base_ref() != ref


def test_download_gets_wheels_of_the_pinned_versions_for_the_images_python(tmp_path):
    pinned = ee.versions()
    command = ee.download_command(pinned, tmp_path / "wheels")
    assert command[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in command and "--python-version=3.11" in command
    assert command[command.index("--dest") + 1] == str(tmp_path / "wheels")
    for name, version in pinned.items():
        assert f"{name}=={version}" in command
    assert any(arg.startswith("--platform=manylinux_2_36_") for arg in command)
