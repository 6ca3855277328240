"""The AWX execution path, run for real (issue 18 item 3).

AWX runs a job on an execution node as `ansible-runner worker` inside the execution environment,
fed by `ansible-runner transmit` (the private data dir: project, inventory, extra vars, the
machine credential's key as env/ssh_key) and read back by `ansible-runner process`. This test
builds opsplay's execution environment image when it is missing (opsplay.lab.ee, cached by a hash
of its recipe), then runs the weekly window through exactly that pipe against the lab hosts over
SSH (`lab up --ssh` publishes their sshd on 127.0.0.1; the container uses the host's network), and
checks on the hosts the outcome the CLI's weekly has: a fresh verified backup, the window closed
with outcome ok and the site answering 200, the security updates' status record written, and no
lease left. The same checks run after the CLI's own weekly over the same SSH inventory.

What tells a job's end: `ansible-runner process` exits 0 whatever happened (ansible-runner 2.4.3
returns its Processor's rc, which it never sets), so the job's status is read from
artifacts/IDENT/status, which the worker sends with its artifacts at the end: successful or
failed for a job that ended, absent when the worker was killed (ansible-runner's Python
interface, which AWX uses, reports that stream as status error).
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from opsplay.errors import ExitCode
from opsplay.lab.ee import ensure_ee

from .conftest import REPO, on_host, start_lab

#: What AWX checks out as the project: the collection's content (the repository root).
PROJECT = ["ansible.cfg", "galaxy.yml", "meta", "playbooks", "plugins", "roles", "collections"]
RUNNER = Path(sys.executable).parent / "ansible-runner"
IDENT = "weekly-ee"
PLAYBOOK = "playbooks/maintenance-weekly.yml"
AWX_COLL = "~/.ansible/collections:/usr/share/ansible/collections"
AWX_ROLES = "~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles"
RECORD = "/var/lib/opsplay/status/security-updates.json"
WORKER = ["ansible-runner", "worker", "--private-data-dir=/runner"]


@pytest.fixture(scope="module")
def ee_image() -> str:
    return ensure_ee(progress=print)


@pytest.fixture
def ssh_lab(lab_inventories, tmp_path) -> Path:
    """The running lab hosts (kept: `lab up` only recreates hosts not on the current image) with
    the lab key authorised for root; returns the generated `lab` inventory dir."""
    root = start_lab(tmp_path / "ssh-inventories", "--ssh")
    return root / "lab"


def private_data_dir(path: Path, ssh_lab: Path) -> Path:
    """An AWX job's private data dir: the project, the inventory (AWX hands the synced inventory
    over as a file; its host vars minus the key path), the extra vars AWX adds, and the machine
    credential as env/ssh_key, never in the image."""
    project = path / "project"
    project.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PROJECT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(source, project / name)
    inventory = yaml.safe_load((ssh_lab / "hosts.yml").read_text())
    hosts = inventory["all"]["hosts"]
    key = Path(next(iter(hosts.values()))["ansible_ssh_private_key_file"])
    for host in hosts.values():
        del host["ansible_ssh_private_key_file"]
    inventory["all"]["vars"] = {"opsplay_env": "lab"}
    shutil.copytree(ssh_lab / "group_vars", path / "inventory" / "group_vars")
    (path / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (path / "env").mkdir()
    shutil.copy(key, path / "env" / "ssh_key")
    (path / "env" / "envvars").write_text(json.dumps(awx_paths(project / "ansible.cfg")))
    (path / "env" / "extravars").write_text(
        json.dumps({"awx_job_id": 4242, "awx_user_name": "admin", "awx_job_template_name": "ee"})
    )
    return path


def awx_paths(cfg: Path) -> dict[str, str]:
    """The paths AWX's RunJob.build_env gives a job: its defaults, after the project's
    ansible.cfg value (read from the project, relative paths kept: the job's cwd is the
    project), after the private data dir's requirements_* (collections/requirements.yml)."""
    config = configparser.ConfigParser()
    config.read(cfg)
    env = {}
    for key, setting, folder, default in (
        ("ANSIBLE_COLLECTIONS_PATH", "collections_path", "requirements_collections", AWX_COLL),
        ("ANSIBLE_ROLES_PATH", "roles_path", "requirements_roles", AWX_ROLES),
    ):
        paths = default.split(":")
        value = config.get("defaults", setting, fallback="")
        if value and any(p not in paths for p in value.split(":")):
            paths = [value, *paths]
        env[key] = ":".join([f"/runner/{folder}", *paths])
    # AWX enables its own callback and appends the project's callbacks_enabled
    env["ANSIBLE_CALLBACKS_ENABLED"] = config.get("defaults", "callbacks_enabled")
    return env


def run_through_worker(data: Path, image: str) -> subprocess.CompletedProcess[str]:
    """transmit | podman run -i --rm EE ansible-runner worker | process, as AWX's receptor does."""
    transmit = subprocess.Popen(
        [str(RUNNER), "transmit", str(data), "-p", PLAYBOOK, "--ident", IDENT],
        stdout=subprocess.PIPE,
    )
    worker = subprocess.Popen(
        ["podman", "run", "-i", "--rm", "--network", "host", image, *WORKER],
        stdin=transmit.stdout,
        stdout=subprocess.PIPE,
    )
    assert transmit.stdout is not None and worker.stdout is not None
    transmit.stdout.close()  # the worker holds the pipe now
    process = subprocess.run(
        [str(RUNNER), "process", str(data), "--ident", IDENT],
        stdin=worker.stdout,
        capture_output=True,
        text=True,
        timeout=900,
    )
    worker.stdout.close()
    assert transmit.wait(timeout=60) == 0
    assert worker.wait(timeout=60) == 0
    return process


def lease_results(artifacts: Path, task: str) -> dict[str, bool]:
    """host -> whether the lease task ``task`` took (a lease now held) or released one, from
    the job's events (the run's own take and release report no change: gates.yml)."""
    found = {}
    for path in (artifacts / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data", {})
        if event["event"] == "runner_on_ok" and data.get("task") == task:
            assert data.get("task_action") == "opsplay.ops.lease"
            res = data["res"]
            found[data["host"]] = bool(res.get("lease") or res.get("released"))
    return found


def prepare(hosts: list[str]) -> dict[str, int]:
    """Remove each host's security updates record (the role writes it only when it changes: a
    run rewrites it only when it is gone); return each host's clock before the run."""
    for host in hosts:
        # under the lab lock no other run is live: a lease here was left by a killed run
        lease = on_host(host, "cat /var/lib/opsplay/lease.json 2>/dev/null || true")
        assert not lease, f"{host}: a lease left by another test's run: {lease}"
        on_host(host, f"rm -f {RECORD}")
    return {host: int(on_host(host, "date +%s")) for host in hosts}


def assert_weekly_outcome(hosts: list[str], started: dict[str, int], run_id: str) -> None:
    """What the CLI's weekly leaves on every lab host (each is a db and a web server)."""
    for host in hosts:
        since = f"@{started[host]}"
        # a backup made in this run and verified (its manifest, written last, says so)
        manifests = on_host(
            host, f"find /var/backups/postgresql -name '*.json' ! -name '.*' -newermt {since}"
        ).split()
        assert manifests, host
        for manifest in manifests:
            doc = json.loads(on_host(host, f"cat {manifest}"))
            assert doc["verified"]["ok"] is True, (host, manifest, doc["verified"])
        # the window is closed: no flag, the site answers 200, the log's last line says ok
        assert on_host(host, "test -e /var/lib/opsplay/maintenance.flag || echo gone") == "gone"
        code = on_host(host, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/")
        assert code == "200", host
        last = json.loads(on_host(host, "tail -n 1 /var/log/opsplay-maintenance.log"))
        assert (last["event"], last["outcome"], last["reason"]) == (
            "end",
            "ok",
            "weekly maintenance",
        ), last
        assert last["run_id"] == run_id, last  # this run's window
        # the security updates' status record (read by opsplay status), removed by prepare():
        # written again by this run
        record = json.loads(on_host(host, f"cat {RECORD}"))
        assert {"pending_security", "held", "refused", "reboot_required"} <= set(record), record
        # the run's lease is released
        assert on_host(host, "test -e /var/lib/opsplay/lease.json || echo none") == "none"


def test_weekly_through_ansible_runner_worker_in_the_ee(ee_image, ssh_lab, tmp_path):
    hosts = sorted(yaml.safe_load((ssh_lab / "hosts.yml").read_text())["all"]["hosts"])
    data = private_data_dir(tmp_path / "job", ssh_lab)
    started = prepare(hosts)

    process = run_through_worker(data, ee_image)

    artifacts = data / "artifacts" / IDENT
    status = (artifacts / "status").read_text().strip() if (artifacts / "status").exists() else ""
    assert process.returncode == 0 and status == "successful", (
        process.returncode,
        status,
        process.stdout[-4000:],
        process.stderr[-2000:],
    )
    assert_weekly_outcome(hosts, started, "awx-4242")  # AWX's job id names the run
    # the lease was taken and released on each host by the playbook itself (so "no lease left"
    # above is this run's release, not a lease never taken)
    for task in ("Take this run's lease on the host", "Release this run's lease on the host"):
        assert lease_results(artifacts, task) == {host: True for host in hosts}, task
    # the key came with the job and left with it: not in the image
    baked = subprocess.run(
        ["podman", "run", "--rm", ee_image, "sh", "-c", "ls /runner; ls -a /runner/.ssh || true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ssh_key" not in baked and "id_" not in baked, baked


def test_weekly_through_the_cli_over_the_same_ssh_inventory(run_opsplay, ssh_lab):
    hosts = sorted(yaml.safe_load((ssh_lab / "hosts.yml").read_text())["all"]["hosts"])
    started = prepare(hosts)
    proc = run_opsplay(
        "maintenance",
        "weekly",
        "--env",
        "lab",
        "--json",
        env={"OPSPLAY_INVENTORY_DIR": str(ssh_lab.parent)},
    )
    assert proc.code == ExitCode.OK, proc.err[-3000:]
    assert_weekly_outcome(hosts, started, json.loads(proc.out)["id"])


SLEEP = """
- name: A job that runs until its worker is killed
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Sleep
      ansible.builtin.command: sleep 120
      changed_when: false
"""
FAIL = """
- name: A job that fails
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fail
      ansible.builtin.fail:
        msg: this job fails
"""


def local_job(path: Path, playbook: str) -> Path:
    """A private data dir whose job runs on the execution node itself (touches no lab host)."""
    (path / "project").mkdir(parents=True)
    (path / "project" / "job.yml").write_text(playbook)
    (path / "inventory").mkdir()
    (path / "inventory" / "hosts").write_text(
        "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
    )
    return path


def worker_stream(data: Path, image: str, name: str, kill_when: str | None = None) -> Path:
    """transmit | podman run EE worker, the worker's stream kept in a file; with ``kill_when``,
    `podman kill` the worker once its stream holds that text."""
    stream = data.parent / f"{data.name}.stream"
    transmit = subprocess.Popen(
        [str(RUNNER), "transmit", str(data), "-p", "job.yml", "--ident", IDENT],
        stdout=subprocess.PIPE,
    )
    with stream.open("wb") as out:
        worker = subprocess.Popen(
            ["podman", "run", "-i", "--rm", "--name", name, image, *WORKER],
            stdin=transmit.stdout,
            stdout=out,
        )
    assert transmit.stdout is not None
    transmit.stdout.close()
    try:
        if kill_when:
            deadline = time.monotonic() + 120
            while kill_when not in stream.read_text(errors="replace"):
                assert worker.poll() is None and time.monotonic() < deadline, stream.read_text()
                time.sleep(0.2)
            subprocess.run(["podman", "kill", name], check=True, capture_output=True)
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
    assert transmit.wait(timeout=60) == 0
    return stream


def process(data: Path, stream: Path) -> tuple[int, str]:
    """`ansible-runner process` on the stream: its exit code and the status file ("" if none)."""
    with stream.open("rb") as feed:
        code = subprocess.run(
            [str(RUNNER), "process", str(data), "--ident", IDENT],
            stdin=feed,
            capture_output=True,
            check=False,
        ).returncode
    status = data / "artifacts" / IDENT / "status"
    return code, status.read_text().strip() if status.exists() else ""


def test_only_the_status_file_tells_a_failed_or_killed_job(ee_image, tmp_path):
    failed = local_job(tmp_path / "failed", FAIL)
    assert process(failed, worker_stream(failed, ee_image, "opsplay-ee-failed")) == (0, "failed")
    assert (failed / "artifacts" / IDENT / "rc").read_text().strip() == "2"

    killed = local_job(tmp_path / "killed", SLEEP)
    stream = worker_stream(killed, ee_image, "opsplay-ee-killed", kill_when='"runner_on_start"')
    code, status = process(killed, stream)
    assert (code, status) == (0, "")  # exit 0, and no status: the worker never sent one
    assert list((killed / "artifacts" / IDENT / "job_events").glob("*.json"))  # events came
    # ansible-runner's Python interface (AWX's) ends the same stream in status error
    import ansible_runner

    replay = local_job(tmp_path / "replay", SLEEP)
    with stream.open("rb") as feed:
        processor = ansible_runner.interface.run(
            streamer="process", _input=feed, private_data_dir=str(replay), ident=IDENT, quiet=True
        )
    assert processor.status == "error", processor.status
