"""Build opsplay's execution environment (AWX) image without a container registry.

``localhost/opsplay-ee:<hash>`` is a ``podman build`` of ``ee/Containerfile`` (shipped next to
this module) on top of the lab's debootstrapped base image (``opsplay.lab.images``). It installs
the exact ansible, ansible-core, ansible-runner and Mitogen versions this opsplay runs with (read
from its own Python environment, so the execution environment and the CLI cannot drift apart);
``<hash>`` covers the base image, the Containerfile and those versions, so an unchanged recipe is
never rebuilt and a changed one gets a new tag. ``localhost/opsplay-ee:latest`` points at the
newest build.
"""

from __future__ import annotations

import platform
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path

from opsplay.errors import ExitCode, OpsplayError
from opsplay.lab.images import (
    LOCK_FILE,
    _short_hash,
    base_ref,
    ensure_base,
    file_lock,
    image_exists,
    podman_build,
    run_command,
)

EE_REPO = "localhost/opsplay-ee"
EE_LATEST = f"{EE_REPO}:latest"

#: Python distribution -> the Containerfile's build argument carrying its version.
PACKAGES = {
    "ansible": "ANSIBLE_VERSION",
    "ansible-core": "ANSIBLE_CORE_VERSION",
    "ansible-runner": "ANSIBLE_RUNNER_VERSION",
    "mitogen": "MITOGEN_VERSION",
}
#: The base image's Python (Debian 12), for which the wheels are downloaded.
IMAGE_PYTHON = "3.11"
#: Installed beside the pinned packages (execution-environment.yml's python list).
EXTRA_REQUIREMENTS = ("jmespath",)


def containerfile() -> bytes:
    """The execution environment's Containerfile, as shipped in the package."""
    return resources.files(__package__).joinpath("ee", "Containerfile").read_bytes()


def versions() -> dict[str, str]:
    """The version of each package in ``PACKAGES`` installed beside this opsplay (the CLI's)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise OpsplayError(
                f"{name} is not installed beside opsplay: cannot pin the execution environment",
                ExitCode.ERROR,
            ) from None
    return found


def build_args(pinned: dict[str, str]) -> list[str]:
    """``--build-arg NAME=VERSION`` for every package, in ``PACKAGES`` order."""
    args = []
    for name, arg in PACKAGES.items():
        args += ["--build-arg", f"{arg}={pinned[name]}"]
    return args


def download_command(pinned: dict[str, str], dest: Path) -> list[str]:
    """pip download of the pinned packages and their dependencies as wheels for the image's
    Python (Debian 12: CPython 3.11, glibc 2.36), with this machine's pip configuration."""
    machine = platform.machine()
    platforms = [f"--platform=manylinux_2_{minor}_{machine}" for minor in (17, 28, 34, 36)]
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        "--only-binary=:all:",
        "--implementation=cp",
        f"--python-version={IMAGE_PYTHON}",
        *platforms,
        *(f"{name}=={version}" for name, version in pinned.items()),
        *EXTRA_REQUIREMENTS,
    ]


def ee_ref(pinned: dict[str, str] | None = None) -> str:
    """The image reference for the current recipe: base image, Containerfile and versions."""
    pinned = versions() if pinned is None else pinned
    recipe = "\n".join(
        [*(f"{name}=={pinned[name]}" for name in PACKAGES), *EXTRA_REQUIREMENTS]
    ).encode()
    return f"{EE_REPO}:{_short_hash(base_ref().encode(), containerfile(), recipe)}"


def ensure_ee(progress: Callable[[str], None] = print, force: bool = False) -> str:
    """Make sure the execution environment image for the current recipe exists (building the
    base image first when it is missing); tag it ``:latest``; return its full reference.
    ``force`` rebuilds it from scratch (no layer cache; the base image is kept)."""
    pinned = versions()
    ref = ee_ref(pinned)
    with file_lock(LOCK_FILE):
        base = ensure_base(progress)
        if force or not image_exists(ref):
            _build(ref, base, pinned, progress, fresh=force)
        else:
            progress(f"{ref} is up to date")
        run_command(["podman", "tag", ref, EE_LATEST], "podman tag")
    return ref


def _build(
    ref: str, base: str, pinned: dict[str, str], progress: Callable[[str], None], fresh: bool
) -> None:
    what = ", ".join(f"{name} {version}" for name, version in pinned.items())
    progress(f"building {ref} from {base} with {what} (a few minutes)")
    with tempfile.TemporaryDirectory(prefix="opsplay-ee-build-") as context:
        run_command(download_command(pinned, Path(context) / "wheels"), "pip download")
        (Path(context) / "Containerfile").write_bytes(containerfile())
        podman_build(
            ref,
            base,
            Path(context),
            "the execution environment",
            extra_args=build_args(pinned),
            fresh=fresh,
        )
