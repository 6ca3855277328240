"""Host-side run leases (plugins/module_utils/lease.py, plugins/modules/lease.py, issue 18): who
may take a host, the one line naming the holder, expiry, release, the file written whole, and
two takers racing for the same host."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from pathlib import Path

from ansible_collections.opsplay.ops.plugins.module_utils import lease
from ansible_collections.opsplay.ops.plugins.modules import lease as lease_module

from .module_harness import run_main

AT = dt.datetime(2026, 12, 7, 1, 0, 0, tzinfo=dt.UTC)
ME = {"controller": "bastion-1", "user": "alice", "run_id": "R-alice", "what": "maintenance weekly"}
BOB = {"controller": "laptop-2", "user": "bob", "run_id": "R-bob", "what": "run reindex"}


def held_by(who: dict, expires: str = "2026-12-07T05:00:00Z") -> dict:
    return {**who, "started": "2026-12-07T00:30:00Z", "expires": expires}


def test_a_free_host_is_taken_until_now_plus_the_ttl():
    taken, new, line = lease.decide_take(None, ME, AT, 3600)
    assert taken and line == "taken"
    assert new == {**ME, "started": "2026-12-07T01:00:00Z", "expires": "2026-12-07T02:00:00Z"}


def test_another_runs_unexpired_lease_refuses_with_one_line_naming_the_holder():
    taken, new, line = lease.decide_take(held_by(BOB), ME, AT, 3600)
    assert not taken and new is None
    assert line == (
        "refused: held by bob@laptop-2 (run R-bob, run reindex) since 2026-12-07T00:30:00Z, "
        "until 2026-12-07T05:00:00Z"
    )
    assert "\n" not in line


def test_the_same_run_takes_again_and_keeps_its_start():
    taken, new, line = lease.decide_take(held_by(ME), ME, AT, 3600)
    assert taken and line == "taken again by the same run"
    assert new["started"] == "2026-12-07T00:30:00Z" and new["expires"] == "2026-12-07T02:00:00Z"


def test_same_controller_and_user_but_another_run_is_refused():
    other_run = {**ME, "run_id": "R-older"}
    taken, _, line = lease.decide_take(held_by(other_run), ME, AT, 3600)
    assert not taken and "run R-older" in line


def test_an_expired_lease_is_taken_over_and_said_so():
    old = held_by(BOB, expires="2026-12-07T01:00:00Z")  # expires exactly now: free
    taken, new, line = lease.decide_take(old, ME, AT, 60)
    assert taken and new["run_id"] == "R-alice"
    assert line.startswith("taken (expired lease of bob@laptop-2 (run R-bob")
    assert not lease.decide_take(held_by(BOB, "2026-12-07T01:00:01Z"), ME, AT, 60)[0]


def test_an_unreadable_lease_file_refuses_until_unlock_removes_it():
    assert lease.decide_take("unreadable", ME, AT, 60)[:2] == (False, None)
    assert lease.decide_release("unreadable", ME) == (False, "unreadable lease file kept")
    assert lease.decide_release("unreadable", ME, force=True)[0]


def test_release_only_this_runs_lease_unless_forced():
    assert lease.decide_release(None, ME) == (False, "no lease")
    assert lease.decide_release(held_by(ME), ME)[0]
    kept, line = lease.decide_release(held_by(BOB), ME)
    assert not kept and line.endswith("(not this run's)") and "bob@laptop-2" in line
    assert lease.decide_release(held_by(BOB), ME, force=True) == (
        True,
        "released lease of bob@laptop-2 (run R-bob, run reindex) since 2026-12-07T00:30:00Z, "
        "until 2026-12-07T05:00:00Z",
    )


def test_take_and_release_on_disk(tmp_path: Path):
    path = str(tmp_path / "opsplay" / "lease.json")  # the directory is created
    taken, changed, found, now_held, line = lease.take(path, ME, 600, at=AT)
    assert (taken, changed, found, line) == (True, True, None, "taken")
    on_disk = json.loads(Path(path).read_text())
    assert on_disk == now_held and on_disk["expires"] == "2026-12-07T01:10:00Z"
    assert oct(Path(path).stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in Path(path).parent.iterdir() if p.name.startswith(".lease.")] == []
    refused = lease.take(path, BOB, 600, at=AT)
    assert refused[0] is False and json.loads(Path(path).read_text()) == on_disk
    assert lease.release(path, BOB)[0] is False and Path(path).exists()
    assert lease.release(path, ME)[0] is True and not Path(path).exists()
    assert lease.release(path, ME) == (False, None, "no lease")


def test_check_mode_decides_without_writing(tmp_path: Path):
    path = str(tmp_path / "lease.json")
    assert lease.take(path, ME, 600, at=AT, check=True)[0] is True
    assert not Path(path).exists()
    lease.take(path, ME, 600, at=AT)
    assert lease.release(path, ME, check=True)[0] is True and Path(path).exists()


def _race(path: str, n: int, results) -> None:
    me = {"controller": f"node-{n}", "user": "u", "run_id": f"R{n}", "what": "w"}
    results.put((n, lease.take(path, me, 600)[0]))


def test_two_controllers_racing_for_a_host_cannot_both_win(tmp_path: Path):
    path = str(tmp_path / "lease.json")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, n, results)) for n in range(8)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    outcomes = dict(results.get(timeout=5) for _ in procs)
    winners = [n for n, won in outcomes.items() if won]
    assert len(winners) == 1, outcomes
    assert json.loads(Path(path).read_text())["run_id"] == f"R{winners[0]}"


def test_the_module_refuses_in_one_line_and_releases(tmp_path: Path):
    path = str(tmp_path / "lease.json")
    args = {"controller": "bastion-1", "user": "alice", "run_id": "R1", "what": "x", "path": path}
    rc, result = run_main(lease_module, args)
    assert rc == 0 and result["changed"] and not result["refused"]
    rc, result = run_main(lease_module, {**args, "user": "bob", "run_id": "R2"})
    assert rc == 1 and result["refused"] and result["msg"].startswith("refused: held by alice@")
    assert result["lease"]["run_id"] == "R1"
    rc, result = run_main(lease_module, {**args, "state": "absent", "run_id": "R2"})
    assert rc == 0 and not result["released"] and Path(path).exists()
    rc, result = run_main(lease_module, {**args, "state": "absent"})
    assert rc == 0 and result["released"] and not Path(path).exists()
    rc, result = run_main(lease_module, {**args, "ttl": 0})
    assert rc == 1 and "ttl must be at least 1" in result["msg"]


def test_a_gone_run_under_the_same_lock_on_the_same_controller_is_taken_over():
    lock = "/home/alice/.local/state/opsplay/locks/prod.lock"
    killed = held_by({**ME, "run_id": "R-killed", "lock": lock})
    taken, new, line = lease.decide_take(killed, {**ME, "lock": lock}, AT, 60)
    assert taken and new["lock"] == lock and new["run_id"] == "R-alice"
    assert line.startswith("taken (lease of a run that is gone: alice@bastion-1 (run R-killed")
    # another state directory (another lock), another controller, or no lock (AWX): refused
    assert not lease.decide_take(killed, {**ME, "lock": "/tmp/other/locks/prod.lock"}, AT, 60)[0]
    assert not lease.decide_take(killed, {**ME, "controller": "b2", "lock": lock}, AT, 60)[0]
    assert not lease.decide_take(killed, ME, AT, 60)[0]
