"""opsplay's part of the host leases (src/opsplay/leases.py, issue 18): which hosts a run still
holds after it ended, read from its events, including the releases its last play made by
delegation for the hosts that failed (playbooks/tasks/release.yml); `opsplay unlock`'s lines;
the options of the follow-up runs opsplay starts itself (src/opsplay/execute.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsplay.environment import Environment
from opsplay.execute import Channel, follow_up_options
from opsplay.inputs import RunOptions
from opsplay.leases import held_hosts, lease_results, unlock_line

TAKE, RELEASE = "Take this run's lease on the host", "Release this run's lease on the host"
DELEGATED = "Release this run's lease on the hosts that failed since they took it"


class Events:
    """A run's job_events directory, as ansible-runner writes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "job_events").mkdir(parents=True)
        self.counter = 0

    def add(self, event: str, host: str, task: str, res: dict[str, Any]) -> None:
        self.counter += 1
        data = {"host": host, "task": task, "task_action": "opsplay.ops.lease", "res": res}
        doc = {"event": event, "counter": self.counter, "event_data": data}
        path = self.root / "job_events" / f"{self.counter}-{self.counter:08x}.json"
        path.write_text(json.dumps(doc))

    def took(self, *hosts: str) -> None:
        for host in hosts:
            self.add("runner_on_ok", host, TAKE, {"refused": False, "msg": "taken", "lease": {}})

    def released(self, host: str) -> None:
        self.add("runner_on_ok", host, RELEASE, {"released": True, "msg": "released lease of x"})

    def delegated(self, by: str, event: str, items: list[dict[str, Any]]) -> None:
        """release.yml's run_once loop on ``by``, one item per failed host."""
        results = [{"ansible_loop_var": "item", **item} for item in items]
        self.add(event, by, DELEGATED, {"results": results, "msg": "All items completed"})


def test_a_failed_hosts_lease_released_by_delegation_is_not_held(tmp_path):
    run = Events(tmp_path)
    run.took("web1", "web2")
    run.add("runner_on_failed", "web2", "Back up", {"msg": "pg_dump failed"})
    run.released("web1")
    run.delegated("web1", "runner_on_ok", [{"item": "web2", "released": True, "msg": "released"}])
    assert held_hosts(tmp_path) == set()  # opsplay's follow-up release has nothing to do
    # the loop's result counts for the host it names, not for the host that ran it
    results = lease_results(tmp_path)
    assert results["web1"]["msg"] == "released lease of x"
    assert results["web2"] == {
        "event": "runner_on_ok",
        "ansible_loop_var": "item",
        "item": "web2",
        "released": True,
        "msg": "released",
    }


def test_a_delegated_release_that_could_not_reach_the_host_leaves_it_held(tmp_path):
    run = Events(tmp_path)
    run.took("web1", "web2", "web3")
    run.released("web1")
    run.delegated(
        "web1",
        "runner_on_unreachable",  # one unreachable item makes the loop's event unreachable
        [
            {"item": "web2", "unreachable": True, "msg": "Failed to connect"},
            # failed_when: false: a lease the module could not remove is an ok item without
            # "released"
            {"item": "web3", "failed": False, "msg": "lease /var/lib/opsplay/lease.json: EIO"},
        ],
    )
    assert held_hosts(tmp_path) == {"web2", "web3"}  # opsplay tries again after the run
    assert lease_results(tmp_path)["web1"]["released"] is True


def test_only_successful_takes_are_held(tmp_path):
    run = Events(tmp_path)
    run.took("web1")
    run.add("runner_on_failed", "web2", TAKE, {"refused": True, "msg": "refused: held by bob"})
    run.add("runner_on_skipped", "web3", TAKE, {"skipped": True})
    assert held_hosts(tmp_path) == {"web1"}
    run.released("web1")
    assert held_hosts(tmp_path) == set()


def test_unlock_lines():
    ok, failed = {"event": "runner_on_ok"}, {"event": "runner_on_failed"}
    released = {**ok, "released": True, "msg": "released lease of bob@b (run R, x)"}
    assert unlock_line({}, released) == "released lease of bob@b (run R, x)"
    assert unlock_line({}, {**ok, "released": False, "msg": "no lease"}) == "no lease"
    assert unlock_line({"unreachable": 1}, {}) == "unreachable: lease not released"
    assert unlock_line({}, {**failed, "msg": "lease x: EIO"}) == "lease not released: lease x: EIO"
    # no result of the module (the host failed otherwise): the run's own message, never "failed: "
    assert unlock_line({"failed": 1, "message": "boom"}, {}) == "lease not released: boom"
    assert unlock_line({"failed": 1}, {}) == "lease not released: the lease task gave no result"


def test_follow_up_runs_keep_the_hosts_strategy_and_vault_and_show_no_progress():
    notices: list[str] = []
    channel = Channel(notice=notices.append, interactive=True, display=True)
    options = RunOptions(
        env="prod",
        limit="web1",
        strategy="linear",
        vault_password_file="/v",
        extravars={"x": 1},
        tags="t",
        yes=True,
    )
    env = Environment(name="prod", path=Path("/inv/prod"))
    follow_up, quiet = follow_up_options(env, options, channel, {"state": "off"})
    assert follow_up == RunOptions(
        env="prod",
        limit="web1",
        as_json=True,
        strategy="linear",
        vault_password_file="/v",
        extravars={"state": "off"},
    )
    assert not quiet.display and not quiet.interactive and quiet.on_event is None
    quiet.notice("hello")
    assert notices == ["hello"]
