"""Start, check and remove the lab hosts: podman containers running systemd.

Each lab host is a container ``opsplay-lab-<n>`` labelled ``opsplay.lab=1``,
running the lab image with systemd as PID 1, so PostgreSQL, nginx and cron run
as real services. Ansible reaches them with the ``containers.podman.podman``
connection (inventory hostname = container name), set in
``inventories/lab/group_vars/all.yml``; ``up`` writes ``inventories/lab/hosts.yml``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsplay.errors import ExitCode, OpsplayError
from opsplay.lab.images import ensure_images, file_lock, run_command

LABEL = "opsplay.lab=1"
NAME_PREFIX = "opsplay-lab-"
#: Every host publishes its sshd on 127.0.0.1:<base + n> (``opsplay lab up --ssh`` uses it).
SSH_PORT_LABEL = "opsplay.lab.ssh_port"
SSH_PORT_BASE = int(os.environ.get("OPSPLAY_LAB_SSH_PORT_BASE", "2200"))
SSH_OPTIONS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
#: Seconds ``up`` waits for every host to boot and serve.
READY_TIMEOUT = 120.0

# ``up`` and ``down`` of concurrent opsplay processes must not interleave.
_LOCK_FILE = Path(tempfile.gettempdir()) / "opsplay-lab-hosts.lock"

# Run inside each host; exit 0 once systemd finished booting, PostgreSQL accepts
# connections and nginx answers (any HTTP status: a host left in maintenance mode answers
# 503 and is up). Prints what is not ready yet otherwise.
_READY_SCRIPT = """
state=$(systemctl is-system-running 2>/dev/null)
case "$state" in running|degraded) ;; *) echo "systemd is ${state:-unknown}"; exit 1;; esac
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "postgresql not ready"; exit 1; }
curl -sS -o /dev/null --max-time 2 http://127.0.0.1:80/ || { echo "nginx not answering"; exit 1; }
"""


def host_names(count: int) -> list[str]:
    """The names of a lab of ``count`` hosts."""
    return [f"{NAME_PREFIX}{index}" for index in range(1, count + 1)]


def inventory_file(inventory_dir: Path) -> Path:
    """Where ``up`` writes the lab inventory."""
    return Path(inventory_dir) / "lab" / "hosts.yml"


def status() -> list[dict[str, Any]]:
    """The lab containers, sorted by number.

    Each is a dict with ``name``, ``state`` (e.g. ``running``), ``status`` (e.g.
    ``Up 4 minutes``), ``image``, ``image_id`` and ``id``.
    """
    out = run_command(
        ["podman", "ps", "--all", "--filter", f"label={LABEL}", "--format", "json"], "podman ps"
    )
    hosts = [
        {
            "name": (entry.get("Names") or [""])[0],
            "state": entry.get("State", ""),
            "status": entry.get("Status", ""),
            "image": entry.get("Image", ""),
            "image_id": entry.get("ImageID", ""),
            "id": entry.get("Id", ""),
            "ssh_port": (entry.get("Labels") or {}).get(SSH_PORT_LABEL, ""),
        }
        for entry in json.loads(out or "[]")
    ]
    return sorted(hosts, key=lambda host: _sort_key(host["name"]))


def _sort_key(name: str) -> tuple[int, str]:
    suffix = name.removeprefix(NAME_PREFIX)
    return (int(suffix), name) if suffix.isdigit() else (1 << 30, name)


def _image_id(ref: str) -> str:
    return run_command(
        ["podman", "image", "inspect", "--format", "{{.Id}}", ref], "podman image inspect"
    ).strip()


def _remove(names: list[str]) -> None:
    if names:
        # -t 0: lab hosts are disposable, no need to wait for a clean systemd shutdown.
        run_command(["podman", "rm", "--force", "--time", "0", *names], "podman rm")


def _answers(name: str) -> bool:
    """Whether a container podman lists as running really runs.

    podman keeps a container's state in its database; when its processes die without
    podman noticing (the machine's sessions are torn down, conmon killed), it still says
    "running" while every exec fails with "cannot exec in a stopped container".
    """
    probe = subprocess.run(["podman", "exec", name, "true"], capture_output=True, check=False)
    return probe.returncode == 0


def ssh_port(name: str) -> int:
    return SSH_PORT_BASE + _sort_key(name)[0]


def _start(name: str, image: str) -> None:
    port = ssh_port(name)
    run_command(
        [
            "podman",
            "run",
            "--detach",
            "--name",
            name,
            "--label",
            LABEL,
            "--label",
            f"{SSH_PORT_LABEL}={port}",
            "--publish",
            f"127.0.0.1:{port}:22",
            "--systemd=always",
            "--hostname",
            name,
            image,
            "/sbin/init",
        ],
        f"podman run of {name}",
    )


def _wait_ready(names: list[str], progress: Callable[[str], None], timeout: float) -> None:
    """Poll every host until ready; raise naming the hosts still not ready after ``timeout``."""
    deadline = time.monotonic() + timeout
    waiting = {name: "not checked yet" for name in names}
    while waiting:
        for name in list(waiting):
            proc = subprocess.run(
                ["podman", "exec", name, "sh", "-c", _READY_SCRIPT],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                del waiting[name]
                progress(f"{name} is ready")
            else:
                lines = (proc.stdout or proc.stderr).strip().splitlines()
                waiting[name] = lines[-1] if lines else f"exit {proc.returncode}"
        if not waiting:
            return
        if time.monotonic() > deadline:
            details = "; ".join(f"{name}: {why}" for name, why in waiting.items())
            raise OpsplayError(
                f"lab hosts not ready after {timeout:.0f} s: {details}", ExitCode.ERROR
            )
        time.sleep(1)


def _write_inventory(path: Path, names: list[str], ssh_key: Path | None) -> None:
    members = "".join(f"        {name}:\n" for name in names)
    if ssh_key is None:
        how = "# Connection settings: group_vars/all.yml (podman exec).\n"
        own = ""
    else:  # host vars beat group_vars/all.yml's podman connection
        how = "# Connection: SSH to each host's sshd published on 127.0.0.1 (lab up --ssh).\n"
        own = "  hosts:\n" + "".join(
            f"    {name}:\n"
            "      ansible_connection: ssh\n"
            "      ansible_host: 127.0.0.1\n"
            f"      ansible_port: {ssh_port(name)}\n"
            "      ansible_user: root\n"
            f"      ansible_ssh_private_key_file: {ssh_key}\n"
            # lab host keys change with every container; Mitogen reads this, not ssh_args
            "      ansible_host_key_checking: false\n"
            f"      ansible_ssh_common_args: {SSH_OPTIONS}\n"
            for name in names
        )
    text = (
        "# Generated by `opsplay lab up`; do not edit, `opsplay lab down` deletes it.\n"
        f"{how}"
        "---\n"
        "all:\n"
        f"{own}"
        "  children:\n"
        "    db_servers:\n"
        "      hosts:\n"
        f"{members}"
        "    web_servers:\n"
        "      hosts:\n"
        f"{members}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def up(
    count: int,
    inventory_dir: Path,
    progress: Callable[[str], None] = print,
    ssh_key_dir: Path | None = None,
) -> list[str]:
    """Run ``count`` lab hosts on the current lab image, wait until they serve, write the inventory.

    Hosts already running the current image are kept; others are (re)created; hosts
    numbered above ``count`` are removed. With ``ssh_key_dir``, a key pair kept there is
    authorised for root on every host and the inventory connects over SSH instead of
    ``podman exec``. Returns the host names.
    """
    if count < 1:
        raise OpsplayError(f"lab size must be at least 1, not {count}", ExitCode.USAGE)
    with file_lock(_LOCK_FILE):
        return _up(count, inventory_dir, progress, ssh_key_dir)


def _up(
    count: int,
    inventory_dir: Path,
    progress: Callable[[str], None],
    ssh_key_dir: Path | None,
) -> list[str]:
    image = ensure_images(progress=progress)
    image_id = _image_id(image)
    names = host_names(count)

    existing = {host["name"]: host for host in status()}
    extra = [name for name in existing if name not in names]
    stale = [
        name
        for name in names
        if name in existing
        and (
            existing[name]["state"] != "running"
            or existing[name]["image_id"] != image_id
            or existing[name]["ssh_port"] != str(ssh_port(name))
        )
    ]
    dead = [name for name in names if name in existing and name not in stale and not _answers(name)]
    if extra:
        progress(f"removing {', '.join(extra)}")
    if dead:
        progress(f"{', '.join(dead)}: podman says running but exec fails; recreating")
        # podman rm alone refuses such a container ("could not be stopped"); a stop
        # first brings podman's record in line with what runc sees.
        subprocess.run(["podman", "stop", "--time", "0", *dead], capture_output=True, check=False)
        stale += dead
    _remove(extra + stale)
    for name in names:
        if name in existing and name not in stale:
            progress(f"{name} already running {image}")
        else:
            progress(f"starting {name} from {image}")
            _start(name, image)

    _wait_ready(names, progress, READY_TIMEOUT)
    key = _authorise_ssh(names, ssh_key_dir, progress) if ssh_key_dir else None
    path = inventory_file(inventory_dir)
    _write_inventory(path, names, key)
    progress(f"wrote {path}")
    return names


def _authorise_ssh(names: list[str], key_dir: Path, progress: Callable[[str], None]) -> Path:
    """Make (once) a key pair in ``key_dir``, authorise it for root on every host, and wait
    until each host's published sshd accepts it. Returns the private key's path."""
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = key_dir / "id_ed25519"
    if not key.exists():
        run_command(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opsplay-lab", "-f", str(key)],
            "ssh-keygen",
        )
    public = key.with_suffix(".pub").read_text(encoding="utf-8")
    install = (
        "install -d -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys "
        "&& chmod 600 /root/.ssh/authorized_keys && systemctl start ssh"
    )
    for name in names:
        proc = subprocess.run(
            ["podman", "exec", "-i", name, "sh", "-c", install],
            input=public,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise OpsplayError(f"cannot authorise the lab key on {name}", ExitCode.ERROR)
    deadline = time.monotonic() + 30
    for name in names:
        probe = [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(ssh_port(name)),
            *SSH_OPTIONS.split(),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=3",
            "root@127.0.0.1",
            "true",
        ]
        while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise OpsplayError(
                    f"sshd of {name} does not accept the lab key on 127.0.0.1:{ssh_port(name)}",
                    ExitCode.ERROR,
                )
            time.sleep(0.5)
        progress(f"{name} answers SSH on 127.0.0.1:{ssh_port(name)}")
    return key


def down(inventory_dir: Path, progress: Callable[[str], None] = print) -> list[str]:
    """Remove every lab container and the generated inventory; return the removed names."""
    with file_lock(_LOCK_FILE):
        names = [host["name"] for host in status()]
        if names:
            progress(f"removing {', '.join(names)}")
        _remove(names)
        path = inventory_file(inventory_dir)
        if path.exists():
            path.unlink()
            progress(f"deleted {path}")
        return names
