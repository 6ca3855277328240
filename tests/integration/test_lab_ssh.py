"""`opsplay lab up --ssh`: the same lab hosts reached over SSH (the production transport)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import yaml

from opsplay.errors import ExitCode

from .conftest import LAB_HOSTS, start_lab


def test_health_over_ssh(run_opsplay, lab_inventories, tmp_path):
    # the lab key goes to this test's OPSPLAY_STATE_DIR (set by the autouse fixture)
    root = start_lab(tmp_path / "inventories", "--ssh")
    inventory = yaml.safe_load((root / "lab" / "hosts.yml").read_text())
    first = inventory["all"]["hosts"]["opsplay-lab-1"]
    assert first["ansible_connection"] == "ssh" and first["ansible_host"] == "127.0.0.1"

    proc = run_opsplay(
        "run", "health", "--env", "lab", "--json", env={"OPSPLAY_INVENTORY_DIR": str(root)}
    )
    assert proc.code == ExitCode.OK, proc.err
    doc = json.loads(proc.out)
    assert doc["strategy"] == "mitogen_linear"
    assert len(doc["hosts"]) == LAB_HOSTS and all(h["ok"] for h in doc["hosts"].values())


def container_ip(name: str) -> str:
    out = subprocess.run(
        [
            "podman",
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            name,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0]


def test_health_through_a_bastion_from_the_teams_ansible_cfg(
    run_opsplay, lab_inventories, tmp_path
):
    """A team's inventory names its hosts by addresses only a bastion reaches, and its own
    ansible.cfg (beside the inventories) sends every SSH connection through that bastion
    (opsplay-lab-1's published sshd). health runs through it, and each host's sshd saw the
    connection come from the bastion, not from the control node."""
    root = start_lab(tmp_path / "lab-inventories", "--ssh")
    generated = yaml.safe_load((root / "lab" / "hosts.yml").read_text())["all"]["hosts"]
    key = generated["opsplay-lab-1"]["ansible_ssh_private_key_file"]
    jump_port = generated["opsplay-lab-1"]["ansible_port"]
    names = sorted(generated)
    team = tmp_path / "team"
    shutil.copytree(root / "lab", team / "lab")
    (team / "lab" / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        name: {
                            "ansible_connection": "ssh",
                            "ansible_host": container_ip(name),  # not published: the bastion's side
                            "ansible_port": 22,
                            "ansible_user": "root",
                            "ansible_ssh_private_key_file": key,
                        }
                        for name in names
                    },
                    "children": {
                        "db_servers": {"hosts": {n: None for n in names}},
                        "web_servers": {"hosts": {n: None for n in names}},
                    },
                }
            }
        )
    )
    options = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    (team / "ansible.cfg").write_text(
        "[ssh_connection]\n"
        f'ssh_args = {options} -o ProxyCommand="ssh {options} -i {key} -p {jump_port} '
        '-W %h:%p root@127.0.0.1"\n'
    )
    # the hosts' sshd logs from the next whole second on: `lab up` itself logged in a moment ago
    # (it waits until each published sshd accepts the key), within the second it returned
    now = subprocess.run(
        ["podman", "exec", names[0], "date", "+%s"], capture_output=True, text=True, check=True
    ).stdout.strip()
    since = f"@{int(now) + 1}"
    time.sleep(1.2)

    proc = run_opsplay(
        "run", "health", "--env", "lab", "--json", env={"OPSPLAY_INVENTORY_DIR": str(team)}
    )
    assert proc.code == ExitCode.OK, proc.err + proc.out[-2000:]
    assert all(h["ok"] for h in json.loads(proc.out)["hosts"].values())
    bastion_ip = container_ip("opsplay-lab-1")
    for name in names:
        log = subprocess.run(
            ["podman", "exec", name, "journalctl", "-u", "ssh", "--since", since, "--no-pager"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        accepted = [line for line in log.splitlines() if "Accepted publickey for root" in line]
        through = [line for line in accepted if f"from {bastion_ip} " in line]
        assert through, (name, log[-2000:])  # Ansible's connection came out of the bastion
        if name != "opsplay-lab-1":  # the bastion also logs the jumps into it, from here
            assert through == accepted, (name, accepted)
