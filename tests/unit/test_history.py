from __future__ import annotations

import json
import stat
import time

from opsplay.state import History, RunRecord


def make_run(history, env, status="successful", changed=0, what="run health"):
    run_id, run_dir = history.new_run_dir(env)
    record = RunRecord(
        id=run_id,
        env=env,
        what=what,
        check=False,
        started=time.time(),
        status=status,
        exit_code=0,
        duration=1.5,
        hosts={
            "h1": {
                "ok": 3,
                "changed": changed,
                "failed": 0,
                "unreachable": 0,
                "skipped": 1,
                "duration": 1.0,
            }
        },
    )
    stdout = run_dir / "artifacts" / run_id / "stdout"
    stdout.parent.mkdir(parents=True)
    stdout.write_text(f"PLAY RECAP for {run_id}\n")
    record.artifacts = str(stdout.parent)
    history.save(record)
    time.sleep(0.01)
    return record


def test_history_lists_filters_and_shows(opsplay, tmp_path):
    history = History(tmp_path / "state")
    first = make_run(history, "dev", changed=2)
    make_run(history, "prod", status="failed")
    result = opsplay("history", "--json")
    rows = json.loads(result.out)
    assert [r["env"] for r in rows] == ["dev", "prod"]
    assert rows[0]["totals"]["changed"] == 2
    assert [r["env"] for r in json.loads(opsplay("history", "--env", "prod", "--json").out)] == [
        "prod"
    ]
    table = opsplay("history").out
    assert first.id in table and "changed=2" in table
    shown = opsplay("history", "show", first.id)
    assert shown.code == 0 and f"PLAY RECAP for {first.id}" in shown.out


def test_show_unknown_run(opsplay):
    result = opsplay("history", "show", "nope")
    assert result.code == 2 and "no run 'nope'" in result.err


def test_rotation_keeps_newest(tmp_path):
    history = History(tmp_path, keep=3)
    ids = [make_run(history, "dev").id for _ in range(5)]
    history.rotate()
    assert [r.id for r in history.records()] == ids[-3:]


def test_rotation_keeps_the_newest_run_of_every_kind(tmp_path):
    history = History(tmp_path, keep=2)
    weekly = make_run(history, "prod", what="maintenance weekly")
    old_status = make_run(history, "prod", what="status")
    other_env = make_run(history, "dev", what="status")
    polls = [make_run(history, "prod", what="status") for _ in range(3)]
    history.rotate()
    kept = [r.id for r in history.records()]
    assert kept == [weekly.id, other_env.id, polls[-2].id, polls[-1].id]
    assert old_status.id not in kept


def test_record_files_are_private(tmp_path):
    history = History(tmp_path)
    record = make_run(history, "dev")
    run_dir = tmp_path / "runs" / record.id
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "run.json").stat().st_mode) == 0o600


def test_private_dir_makes_every_missing_parent_0700(tmp_path):
    import os
    import stat

    from opsplay.state import private_dir

    old = os.umask(0o022)  # a usual umask: mkdir(parents=True) would leave parents 0755
    try:
        private_dir(tmp_path / "state" / "runs" / "20261130-lab")
    finally:
        os.umask(old)
    for path in (
        tmp_path / "state",
        tmp_path / "state" / "runs",
        tmp_path / "state" / "runs" / "20261130-lab",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
