"""Host-side run leases, the CLI's part (issue 18 item 1).

The playbooks take and release the leases themselves (playbooks/tasks/gates.yml and
release.yml, plugins/modules/lease.py), so AWX and plain ansible-playbook runs hold them too.
opsplay adds three things: a run refused on every host exits 5 (``refused_problem``); a run that
failed or was cancelled releases what it still holds (``release_run``: a failed host left the
playbook before its last play); and ``opsplay unlock`` breaks leases (``unlock``).
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplay.errors import ExitCode

if TYPE_CHECKING:
    from opsplay.environment import Environment
    from opsplay.execute import Channel
    from opsplay.inputs import RunOptions
    from opsplay.playbooks import Playbook
    from opsplay.runner import RunResult
    from opsplay.settings import Settings
    from opsplay.state import RunRecord

#: Procedures that change nothing on a host: they take no lease and run beside one. Every other
#: playbook declares ``opsplay_gate.lease: true`` (tests/unit/test_calendar_gate_playbooks.py).
READ_ONLY = frozenset({"health", "cert-check"})
LEASE_ACTIONS = ("opsplay.ops.lease", "lease")
UNLOCK_PLAYBOOK = "leases/unlock.yml"
RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


def takes_lease(book: Playbook) -> bool:
    return book.name not in READ_ONLY


def identity() -> dict[str, str]:
    """This control node and user, as the run gate (plugins/module_utils/run_gate.py) names them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        import os

        user = str(os.getuid())
    return {"controller": socket.gethostname(), "user": user}


def lease_events(artifacts: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """Every lease result of a run, in order: (host, event, result). A loop's items count for
    the host each names (release.yml releases the failed hosts' leases by delegation, one item
    per host), not for the host that ran the loop."""
    events = []
    for path in artifacts.glob("job_events/*.json"):
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        data = event.get("event_data") or {}
        if event.get("event") in RESULTS and data.get("task_action") in LEASE_ACTIONS:
            events.append((int(event.get("counter", 0)), event))
    found: list[tuple[str, str, dict[str, Any]]] = []
    for _, event in sorted(events, key=lambda pair: pair[0]):
        data = event["event_data"]
        res = data.get("res") or {}
        items = res.get("results")
        if not isinstance(items, list):
            found.append((str(data.get("host")), event["event"], res))
            continue
        for item in items:
            if isinstance(item, dict) and item.get(item.get("ansible_loop_var", "item")):
                host = str(item[item.get("ansible_loop_var", "item")])
                found.append((host, _item_event(item), item))
    return found


def _item_event(item: dict[str, Any]) -> str:
    """The event a loop item's result would have had as a task of its own."""
    for key, event in (
        ("unreachable", "runner_on_unreachable"),
        ("failed", "runner_on_failed"),
        ("skipped", "runner_on_skipped"),
    ):
        if item.get(key):
            return event
    return "runner_on_ok"


def lease_results(artifacts: Path) -> dict[str, dict[str, Any]]:
    """The lease task's result per host, from a run's events (each host's last one)."""
    return {host: {"event": event, **res} for host, event, res in lease_events(artifacts)}


def held_hosts(artifacts: Path) -> set[str]:
    """The hosts on which the run took its lease (a take that succeeded) and no release
    succeeded after it: neither the host's own in the last play nor one delegated for it. A
    release that failed or could not reach the host leaves it held (opsplay tries again)."""
    held: set[str] = set()
    for host, event, res in lease_events(artifacts):
        if event != "runner_on_ok":
            continue
        if "released" in res:
            held.discard(host)
        elif res.get("refused") is False:
            held.add(host)
    return held


def refused_problem(result: RunResult, what: str, env: str) -> str | None:
    """One line when another run's lease refused every host of the run (exit 5), else None."""
    if result.exit_code != ExitCode.HOSTS_FAILED or not result.stats:
        return None
    hosts = set().union(*(set(v) for v in result.stats.values() if isinstance(v, dict)))
    refused = {h: r for h, r in lease_results(result.artifacts).items() if r.get("refused")}
    if not hosts or set(refused) != hosts:
        return None
    first = sorted(refused)[0]
    others = f" (and {len(refused) - 1} more host(s))" if len(refused) > 1 else ""
    reason = str(refused[first].get("msg", "refused")).removeprefix("refused: ")
    return f"{what} on {env}: every host is held by another run: {first} {reason}{others}"


def release_run(
    settings: Settings,
    env: Environment,
    run_id: str,
    options: RunOptions,
    channel: Channel,
    artifacts: Path | None = None,
) -> None:
    """Release the leases run ``run_id`` of this controller and user still holds (a host that
    failed or was unreachable never reached the playbook's release). With the run's
    ``artifacts``, only on the hosts its events show holding one (none: nothing runs); without
    (interrupted before its events were kept), on the run's hosts."""
    if artifacts is not None:
        held = held_hosts(artifacts)
        if not held:
            return
        options = replace(options, limit=",".join(sorted(held)))
    record = _unlock_run(settings, env, options, channel, run_id, f"release leases of {run_id}")
    for host, row in record.hosts.items():
        if row.get("unreachable") or row.get("failed"):
            channel.notice(
                f"{host}: the lease of run {run_id} could not be released: it expires on its "
                f"own, or: opsplay unlock --env {env.name} --limit {host}"
            )


def unlock(
    settings: Settings, env: Environment, options: RunOptions, channel: Channel
) -> tuple[int, list[str]]:
    """Break every lease on the hosts (``opsplay unlock``): the exit code and one line per host
    (``HOST: what happened``) for the caller to show."""
    record = _unlock_run(settings, env, options, channel, "", "unlock")
    results = lease_results(Path(record.artifacts)) if record.artifacts else {}
    lines = [
        f"{host}: {unlock_line(record.hosts[host], results.get(host, {}))}"
        for host in sorted(record.hosts)
    ]
    return int(record.exit_code or 0), lines


def unlock_line(row: dict[str, Any], res: dict[str, Any]) -> str:
    """What ``opsplay unlock`` did on one host: the module's own line (``released lease of
    ...``, ``no lease``), or why the lease was not released."""
    if row.get("unreachable"):
        return "unreachable: lease not released"
    message = str(res.get("msg") or row.get("message") or "").strip()
    if res.get("event") == "runner_on_ok":
        return message or "no lease"
    return f"lease not released: {message or 'the lease task gave no result'}"


def _unlock_run(
    settings: Settings,
    env: Environment,
    options: RunOptions,
    channel: Channel,
    run_id: str,
    what: str,
) -> RunRecord:
    from opsplay.content import playbooks_dir
    from opsplay.execute import follow_up_options, run_recorded

    me = identity()
    release, quiet = follow_up_options(
        env,
        options,
        channel,
        {
            "opsplay_unlock_controller": me["controller"],
            "opsplay_unlock_user": me["user"],
            "opsplay_unlock_run_id": run_id,
        },
    )
    record, _ = run_recorded(
        settings, env, playbooks_dir() / UNLOCK_PLAYBOOK, what, release, quiet, locked=True
    )
    return record
