"""benchmarks/pg.py's pure logic: the strong-lock share of a run's samples, the verdicts against
the targets, the table and the options it refuses (the measures themselves need the lab)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pg.py"
spec = importlib.util.spec_from_file_location("benchmark_pg", SCRIPT)
assert spec and spec.loader
pg = importlib.util.module_from_spec(spec)
sys.modules["benchmark_pg"] = pg
spec.loader.exec_module(pg)


def test_lock_share_counts_only_samples_inside_the_run():
    samples = [(0.9, "16390:AccessExclusiveLock"), (1.0, ""), (1.5, "16390:ShareLock"),
               (2.0, ""), (2.5, ""), (3.1, "16390:AccessExclusiveLock")]  # fmt: skip
    assert pg.lock_share(samples, 1.0, 3.0) == pytest.approx(1 / 4)


def test_lock_share_is_zero_when_no_sample_saw_a_strong_lock():
    assert pg.lock_share([(1.0, ""), (1.02, ""), (1.04, "")], 1.0, 1.04) == 0


def test_lock_share_is_unknown_without_a_sample_in_the_run():
    assert pg.lock_share([(0.5, "")], 1.0, 2.0) is None


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [(1.15, 1.15, "met"), (1.16, 1.15, "not met"), (0.0, 0, "met"), (None, 1, "not met")],
)
def test_verdict(value, target, expected):
    assert pg.verdict(value, target) == expected


def test_compress_flag_follows_the_role_method():
    assert pg.compress_flag("gzip", 1) == "-Z1"
    assert pg.compress_flag("zstd", 3) == "--compress=zstd:3"


def test_ratio_row_says_met_or_not_against_its_target():
    assert pg.ratio_row("backup", 11.0, 10.0, 1.15) == {
        "measure": "backup", "opsplay": "11.00 s", "plain": "10.00 s", "ratio": "1.10",
        "target": "<= 1.15", "result": "met",
    }  # fmt: skip
    assert pg.ratio_row("vacuum", 4.0, 10.0, 0.3)["result"] == "not met"
    assert pg.fixed_row("empty backup", 3.2, 3)["result"] == "not met"


def results(share_opsplay, plain_dump=31.0):
    return {
        "backup": {"opsplay": [33.0, 34.0, 35.0], "plain": [plain_dump] * 3, "empty": [2.5] * 3,
                   "level": "gzip:1", "database_bytes": 3e9, "dump_bytes": 1e9},
        "restore": {"opsplay": [50.0] * 3, "plain": [49.0] * 3},
        "vacuum": {"opsplay": [4.0] * 3, "plain": [20.0] * 3, "nothing": [1.8] * 3,
                   "bytes": 1.1e9},
        "reindex": {"opsplay": [6.0] * 3, "plain": [2.0] * 3, "share_opsplay": share_opsplay,
                    "share_plain": [0.9, 0.95, 1.0]},
    }  # fmt: skip


def test_table_rows_carry_every_target():
    rows = pg.table_rows(results([0.0, 0.0, 0.0]), pg.SCALES["full"])
    by = {r["measure"].split(" (")[0]: r for r in rows}
    assert by["backup / pg_dump -Fc gzip:1"]["ratio"] == "1.10"
    assert by["backup / pg_dump -Fc gzip:1"]["result"] == "met"
    assert by["backup of an empty database"]["result"] == "met"
    assert by["restore-test / createdb+pg_restore+dropdb"]["result"] == "met"
    assert by["vacuum targeted / VACUUM ANALYZE"]["ratio"] == "0.20"
    assert by["vacuum with nothing to do"]["result"] == "met"
    lock = by["reindex: time under a lock > SHARE UPDATE EXCLUSIVE"]
    assert (lock["opsplay"], lock["plain"], lock["result"]) == ("0 %", "95 %", "met")
    assert by["condition: plain dump takes at least 30 s"]["result"] == "met"


def test_one_strong_sample_in_any_run_fails_the_lock_target():
    rows = pg.table_rows(results([0.0, 0.02, 0.0]), pg.SCALES["full"])
    lock = next(r for r in rows if r["measure"].startswith("reindex: time under"))
    assert (lock["opsplay"], lock["result"]) == ("2 %", "not met")


def test_a_run_without_samples_fails_the_lock_target():
    rows = pg.table_rows(results([0.0, None, 0.0]), pg.SCALES["full"])
    lock = next(r for r in rows if r["measure"].startswith("reindex: time under"))
    assert lock["result"] == "not met"


def test_a_short_plain_dump_is_reported_at_full_scale_only():
    full = pg.table_rows(results([0.0] * 3, plain_dump=12.0), pg.SCALES["full"])
    assert full[-1]["measure"].startswith("condition") and full[-1]["result"] == "not met"
    small = pg.table_rows(results([0.0] * 3, plain_dump=12.0), pg.SCALES["small"])
    assert not any(r["measure"].startswith("condition") for r in small)


def test_format_table_aligns_every_row():
    text = pg.format_table([pg.fixed_row("vacuum with nothing to do", 1.5, 2)])
    header, rule, row = text.splitlines()
    assert header.startswith("measure") and set(rule) == {"-"}
    assert row.startswith("vacuum with nothing to do") and row.endswith("met")


def test_failure_line_prefers_the_summary_failure():
    summary = {"hosts": {"opsplay-lab-1": {"failed": 1, "failed_task": "Dump",
                                           "message": "pg_dump: error: x"}}}  # fmt: skip
    assert pg.failure_line(json.dumps(summary), "noise") == "opsplay-lab-1: Dump: pg_dump: error: x"
    assert pg.failure_line("not json", "first\nopsplay: last line") == "opsplay: last line"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inventory-dir", "/nonexistent/inventories"], "does not exist"),
        (["--reps", "0"], "--reps must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


def test_only_some_measures_give_only_their_rows():
    full = results([0.0] * 3, plain_dump=40.0)
    subset = {k: full[k] for k in ("backup", "restore")}
    rows = pg.table_rows(subset, pg.SCALES["full"])
    assert [r["measure"].split(" ")[0] for r in rows] == [
        "backup", "backup", "restore-test", "condition:"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("restore-test", ("backup", "restore-test")),
        ("reindex,backup", ("backup", "reindex")),
        ("vacuum", ("vacuum",)),
    ],
)
def test_only_parses_measures_in_their_order(text, expected):
    assert pg.measures(text) == expected


@pytest.mark.parametrize("text", ["", "backups", "backup,nope"])
def test_only_refuses_unknown_measures(text):
    with pytest.raises(argparse.ArgumentTypeError):
        pg.measures(text)
