"""Build the lab images from Debian packages, only when their recipe changed.

No container registry is reachable, so the lab image is built in two steps:

1. ``localhost/opsplay-base:<hash>``: ``debootstrap`` a minimal Debian 12 root
   filesystem and ``podman import`` it (about 80 s);
2. ``localhost/opsplay-lab:<hash>``: ``podman build`` of the ``Containerfile``
   shipped next to this module on top of the base (about 60 s).

Each ``<hash>`` is a short sha256 of the recipe that produced the image (the
debootstrap parameters, plus the Containerfile for the lab image), so a changed
recipe yields a new tag and an unchanged one is never rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path

from opsplay.errors import ExitCode, OpsplayError

BASE_REPO = "localhost/opsplay-base"
LAB_REPO = "localhost/opsplay-lab"
LAB_LATEST = f"{LAB_REPO}:latest"

#: Everything that determines the base image. Changing any value changes its tag.
DEBOOTSTRAP = {
    "suite": "bookworm",
    "variant": "minbase",
    "include": "python3,systemd-sysv,sudo",
    "mirror": "http://deb.debian.org/debian",
}

LOCK_FILE = Path(tempfile.gettempdir()) / "opsplay-lab-images.lock"


def _short_hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:12]


def containerfile() -> bytes:
    """The lab image's Containerfile, as shipped in the package."""
    return resources.files(__package__).joinpath("Containerfile").read_bytes()


def base_ref() -> str:
    """The base image reference for the current debootstrap recipe."""
    recipe = json.dumps(DEBOOTSTRAP, sort_keys=True).encode()
    return f"{BASE_REPO}:{_short_hash(recipe)}"


def lab_ref() -> str:
    """The lab image reference for the current recipe (base recipe + Containerfile)."""
    return f"{LAB_REPO}:{_short_hash(base_ref().encode(), containerfile())}"


def run_command(args: list[str], what: str) -> str:
    """Run a command (argument list), return its stdout; one-line OpsplayError on failure."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OpsplayError(
            f"{what}: '{args[0]}' not found (run scripts/setup-host as root)", ExitCode.ERROR
        ) from None
    if proc.returncode != 0:
        raise OpsplayError(
            f"{what} failed (exit {proc.returncode}): {_last_line(proc)}", ExitCode.ERROR
        )
    return proc.stdout


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The most telling line of a failed command's output, shortened to fit one line."""
    lines = [line.strip() for line in f"{proc.stdout}\n{proc.stderr}".splitlines() if line.strip()]
    errors = [
        line
        for line in lines
        if ("error" in line.lower() or line.startswith("E:"))
        and not line.startswith("Error: building at STEP")
    ]
    line = (errors or lines or ["no output"])[-1]
    return line if len(line) <= 300 else line[:297] + "..."


def image_exists(ref: str) -> bool:
    """True when the local podman storage holds ``ref``."""
    try:
        proc = subprocess.run(["podman", "image", "exists", ref], capture_output=True, check=False)
    except FileNotFoundError:
        raise OpsplayError(
            "podman not found (run scripts/setup-host as root)", ExitCode.ERROR
        ) from None
    return proc.returncode == 0


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (serialises concurrent opsplay processes)."""
    with open(path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first), from /proc/self/mounts."""
    prefix = str(path.resolve())
    points = []
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_rootfs(tmp: Path) -> None:
    """Remove the temporary rootfs, never following a mount (e.g. a leftover /dev bind)."""
    for point in _mounts_under(tmp):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    if _mounts_under(tmp):
        raise OpsplayError(
            f"{tmp} still has mounts; not removing it, clean it up by hand", ExitCode.ERROR
        )
    shutil.rmtree(tmp, ignore_errors=True)


def _build_base(ref: str, progress: Callable[[str], None]) -> None:
    if shutil.which("debootstrap") is None:
        raise OpsplayError("debootstrap not found (run scripts/setup-host as root)", ExitCode.ERROR)
    progress(f"building {ref} with debootstrap from {DEBOOTSTRAP['mirror']} (about 80 s)")
    tmp = Path(tempfile.mkdtemp(prefix="opsplay-rootfs-", dir="/var/tmp"))
    try:
        rootfs = tmp / "rootfs"
        run_command(
            [
                "debootstrap",
                f"--variant={DEBOOTSTRAP['variant']}",
                f"--include={DEBOOTSTRAP['include']}",
                DEBOOTSTRAP["suite"],
                str(rootfs),
                DEBOOTSTRAP["mirror"],
            ],
            "debootstrap",
        )
        # Drop the downloaded .debs: they would only bloat the image.
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        tarball = tmp / "rootfs.tar"
        run_command(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."],
            "tar of the rootfs",
        )
        run_command(
            ["podman", "import", "--change", 'CMD ["/sbin/init"]', str(tarball), ref],
            "podman import of the base image",
        )
    finally:
        _remove_rootfs(tmp)


def podman_build(
    ref: str,
    base: str,
    context: Path,
    what: str,
    extra_args: Sequence[str] = (),
    fresh: bool = False,
) -> None:
    """``podman build`` the ``Containerfile`` in ``context`` on ``base`` (never pulling) as
    ``ref``; ``fresh`` skips the layer cache. One line naming ``what`` on failure."""
    run_command(
        [
            "podman",
            "build",
            "--pull=never",
            *(["--no-cache"] if fresh else []),
            "--build-arg",
            f"BASE_IMAGE={base}",
            *extra_args,
            "--file",
            str(context / "Containerfile"),
            "--tag",
            ref,
            str(context),
        ],
        f"podman build of {what}",
    )


def _build_lab(ref: str, base: str, progress: Callable[[str], None]) -> None:
    progress(f"building {ref} from {base} (about 60 s)")
    with tempfile.TemporaryDirectory(prefix="opsplay-lab-build-") as context:
        (Path(context) / "Containerfile").write_bytes(containerfile())
        podman_build(ref, base, Path(context), "the lab image")


def ensure_base(progress: Callable[[str], None] = print, force: bool = False) -> str:
    """Make sure the debootstrapped base image exists (build it when missing, or always with
    ``force``); return its reference. Callers hold the images lock."""
    base = base_ref()
    if force or not image_exists(base):
        _build_base(base, progress)
    return base


def ensure_images(progress: Callable[[str], None] = print, force: bool = False) -> str:
    """Make sure the lab image for the current recipe exists; return its full reference.

    Builds the base and the lab image only when missing (or always with ``force``),
    and tags the lab image ``localhost/opsplay-lab:latest``.
    """
    base, lab = base_ref(), lab_ref()
    with file_lock(LOCK_FILE):
        ensure_base(progress, force)
        if force or not image_exists(lab):
            _build_lab(lab, base, progress)
        else:
            progress(f"{lab} is up to date")
        run_command(["podman", "tag", lab, LAB_LATEST], "podman tag")
    return lab
