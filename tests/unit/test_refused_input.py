"""A host failure a role's module marks as bad input (``opsplay_bad_input``, e.g. a restore of a
database that has no backup there) is exit 2 with the host's line, when every failed host failed
that way; any other failure keeps exit 3."""

from __future__ import annotations

from pathlib import Path

from opsplay.display import Progress
from opsplay.execute import _bad_input
from opsplay.inputs import RunOptions
from opsplay.runner import RunResult

NO_BACKUP = (
    "no backup of database nosuchdb on h1 in /var/backups/postgresql; databases with backups: shop"
)


def failed(progress: Progress, host: str, msg: str, bad_input: bool | None, rescued: bool = False):
    res: dict[str, object] = {"msg": msg, "failed": True}
    if bad_input is not None:
        res["opsplay_bad_input"] = bad_input
    progress.handle(
        {"event": "runner_on_failed", "event_data": {"host": host, "task": "t", "res": res}}
    )


def stats(progress: Progress, failures: dict[str, int], dark: dict[str, int] | None = None):
    progress.handle(
        {
            "event": "playbook_on_stats",
            "event_data": {"ok": {h: 1 for h in failures}, "failures": failures, "dark": dark},
        }
    )


def result(progress: Progress, status: str = "failed", rc: int = 2) -> str | None:
    return _bad_input(
        RunResult(status, rc, progress.stats, Path("/nonexistent")), progress, RunOptions()
    )


def test_every_failed_host_refused_as_bad_input_is_exit_2_with_its_line():
    progress = Progress("t", live=False, quiet=True)
    failed(progress, "h1", NO_BACKUP, True)
    stats(progress, {"h1": 1})
    assert result(progress) == "bad input: " + NO_BACKUP


def test_a_host_failing_otherwise_keeps_exit_3():
    progress = Progress("t", live=False, quiet=True)
    failed(progress, "h1", NO_BACKUP, True)
    failed(progress, "h2", "disk full", False)
    stats(progress, {"h1": 1, "h2": 1})
    assert result(progress) is None


def test_a_rescued_bad_input_failure_followed_by_another_failure_is_not_bad_input():
    progress = Progress("t", live=False, quiet=True)
    failed(progress, "h1", NO_BACKUP, True)
    failed(progress, "h1", "server down", None)  # the host's last failure decides
    stats(progress, {"h1": 1})
    assert result(progress) is None


def test_an_unreachable_host_or_a_successful_run_is_not_bad_input():
    progress = Progress("t", live=False, quiet=True)
    failed(progress, "h1", NO_BACKUP, True)
    stats(progress, {"h1": 1}, dark={"h2": 1})
    assert result(progress) is None
    ok = Progress("t", live=False, quiet=True)
    stats(ok, {"h1": 0})
    assert result(ok, "successful", 0) is None


def test_a_refusal_and_an_argument_check_together_are_one_bad_input_line():
    progress = Progress("t", live=False, quiet=True)
    failed(progress, "h1", NO_BACKUP, True)
    progress.handle(
        {
            "event": "runner_on_failed",
            "event_data": {
                "host": "h2",
                "task": "Validating arguments against arg spec 'main'",
                "resolved_action": "ansible.builtin.validate_argument_spec",
                "res": {
                    "failed": True,
                    "msg": "argument errors",
                    "argument_errors": ["argument 'pg_backup_jobs' is of type str ..."],
                    "argument_spec_data": {"pg_backup_jobs": {"type": "int"}},
                    "validate_args_context": {"name": "pg_backup"},
                },
            },
        }
    )
    stats(progress, {"h1": 1, "h2": 1})
    assert result(progress) == (
        f"bad input: {NO_BACKUP}; argument 'pg_backup_jobs' is of type str ... "
        "(argument spec of role pg_backup)"
    )
