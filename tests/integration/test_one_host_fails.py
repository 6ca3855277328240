"""One host's failure stays that host's: PostgreSQL stops on the last lab host inside the weekly
window; the other hosts complete the window and get their security updates, and the failed host
is named with its cause (issue 16, item 5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsplay.errors import ExitCode

from .conftest import LAB_HOSTS, REPO, on_host, version

APT_REPO = REPO / "molecule" / "security_updates" / "apt-repo.sh"
HOSTS = [f"opsplay-lab-{i}" for i in range(1, LAB_HOSTS + 1)]


def window_log(host: str) -> list[dict]:
    text = on_host(host, "cat /var/log/opsplay-maintenance.log 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def events(state: Path) -> Iterator[dict]:
    """The run's events as ansible-runner keeps them, in order, as they are written."""
    seen: set[Path] = set()
    while True:
        new = sorted(
            (
                p
                for p in state.glob("runs/*/artifacts/*/job_events/[0-9]*.json")
                if p not in seen and not p.name.endswith("-partial.json")
            ),
            key=lambda p: int(p.name.split("-", 1)[0]),
        )
        for path in new:
            seen.add(path)
            try:
                yield json.loads(path.read_text(encoding="utf-8"))
            except ValueError:  # still being written: read it again next time
                seen.discard(path)
        yield {}


def ansible_process_groups(pid: int) -> set[int]:
    """The process groups of ``pid``'s children (ansible-playbook runs in a session of its own)."""
    groups = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # ppid
            groups.add(int(fields[2]))
    return groups - {os.getpgrp()}


@pytest.mark.skipif(LAB_HOSTS < 2, reason="needs two lab hosts")
def test_postgresql_stopped_on_one_host_inside_the_window(run_opsplay, lab_inventories):
    failing, others = HOSTS[-1], HOSTS[:-1]
    for host in HOSTS:  # local repositories with v1.1 of the demo packages, v1.0 installed
        subprocess.run(["podman", "cp", str(APT_REPO), f"{host}:/tmp/apt-repo.sh"], check=True)
        on_host(host, "sh /tmp/apt-repo.sh")
    logged = {host: len(window_log(host)) for host in HOSTS}
    proc = run_opsplay.start("maintenance", "weekly", "--env", "lab", "--json")
    try:
        # The failing host's health check and backup pass; as soon as its backup is done (its
        # first event after the pg_backup role's: the window opens), the run is frozen,
        # PostgreSQL is stopped there, and the run goes on: inside the window, pg_maintenance
        # finds the server down on that host only.
        stopped = backed_up = False
        for event in events(run_opsplay.state):
            data = event.get("event_data") or {}
            if data.get("host") == failing and data.get("role") == "pg_backup":
                backed_up = True
            elif data.get("host") == failing and backed_up:
                groups = ansible_process_groups(proc.pid)
                for group in groups:
                    os.killpg(group, signal.SIGSTOP)
                try:
                    on_host(failing, "systemctl stop postgresql")
                    stopped = True
                finally:
                    for group in groups:
                        os.killpg(group, signal.SIGCONT)
                break
            if not event:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        out, err = proc.communicate(timeout=900)
        assert stopped, f"{failing} never finished its backup: {err[-2000:]}"

        assert proc.returncode == ExitCode.HOSTS_FAILED, err[-3000:]
        doc = json.loads(out)
        # The failed host is named with its cause; the others did not fail.
        row = doc["hosts"][failing]
        assert row["failed"] == 1 and row["unreachable"] == 0, row
        assert "is not reachable" in row["message"] and "PostgreSQL" in row["message"], row
        for host in others:
            assert doc["hosts"][host]["failed"] == 0, doc["hosts"][host]
            assert doc["hosts"][host]["unreachable"] == 0, doc["hosts"][host]

        # Every other host completed the window and got its security updates; the failed host
        # closed its window and got none.
        for host in others:
            entries = window_log(host)[logged[host] :]
            assert [(e["event"], e.get("outcome")) for e in entries] == [
                ("start", None),
                ("end", "ok"),
            ], entries
            assert version(host, "opsplay-demo-app") == "1.1"
            assert host in doc["data"]["security_updates"]
        entries = window_log(failing)[logged[failing] :]
        assert [(e["event"], e.get("outcome")) for e in entries] == [
            ("start", None),
            ("end", "failed"),
        ], entries
        assert version(failing, "opsplay-demo-app") == "1.0"
        assert failing not in doc["data"].get("security_updates", {})

        # The vacuum report holds the hosts that have a result, and only those.
        reports = list((run_opsplay.state / "reports" / "lab").glob("*-vacuum.json"))
        assert len(reports) == 1, reports
        report = json.loads(reports[0].read_text(encoding="utf-8"))
        assert [h["host"] for h in report["hosts"]] == others
    finally:
        if proc.poll() is None:  # cancel the run: opsplay closes the window it opened
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        on_host(failing, "systemctl start postgresql")
        for host in HOSTS:
            on_host(
                host,
                "systemctl disable --now opsplay-demo.service 2>/dev/null;"
                " dpkg --purge $(dpkg-query -W -f '${Package} ' 'opsplay-demo-*') >/dev/null;"
                " rm -rf /srv/opsplay-apt /etc/apt/sources.list.d/opsplay-test.list"
                " /var/run/reboot-required /var/run/reboot-required.pkgs",
            )
