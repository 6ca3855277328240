"""What a run shows: live progress while it runs, then a recap table per host (or one JSON doc).

Fed by ansible-runner's events; keeps no state that decides the exit code.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsplay.arguments import BadInput, from_result
from opsplay.state import RunRecord

_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
# ansible's stats keys -> the recap's column names
_STATS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
}


@dataclass
class HostProgress:
    task: str = ""
    done: int = 0
    last: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float = 0.0
    message: str = ""
    failed_task: str = ""
    # the last failure, when it was bad input (a role's argument check, a module's refusal)
    bad_input: BadInput | None = None


class Progress:
    """Consumes events. On a terminal: a live table; otherwise one line per task result."""

    def __init__(
        self,
        title: str,
        *,
        live: bool,
        quiet: bool,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.title = title
        self._on_event = on_event
        self.hosts: dict[str, HostProgress] = {}
        self.stats: dict[str, Any] | None = None
        # What roles recorded with ansible.builtin.set_stats (aggregated, not per host): the
        # run's reports, e.g. {"security_updates": {HOST: {..., "summary": "..."}}}.
        self.data: dict[str, Any] = {}
        self._quiet = quiet
        self._live: Any = None
        if live and not quiet:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                get_renderable=self._render,
                console=Console(stderr=True),
                refresh_per_second=4,
                transient=True,
            )

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def handle(self, event: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(event)
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if kind == "playbook_on_stats":
            self.stats = {k: data.get(k) or {} for k in _STATS}
            self.data = data.get("artifact_data") or {}
            return
        if not host:
            return
        progress = self.hosts.setdefault(host, HostProgress())
        if kind == "runner_on_start":
            progress.task = data.get("task", "")
        elif kind in _RESULTS:
            progress.done += 1
            progress.last = _RESULTS[kind]
            progress.finished = time.monotonic()
            res = data.get("res") or {}
            if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
                "ignore_errors"
            ):
                progress.message = _one_line(res.get("msg") or res.get("stderr") or "")
                progress.failed_task = data.get("task", "")
                action = data.get("resolved_action") or data.get("task_action") or ""
                progress.bad_input = from_result(action, res)
            if not self._live and not self._quiet:
                print(f"{host}: {progress.last}: {data.get('task', '')}", file=sys.stderr)

    def host_results(self) -> dict[str, dict[str, Any]]:
        """Per-host counts from ansible's stats, with durations and failure messages."""
        stats = self.stats or {}
        names = set(self.hosts)
        for per_host in stats.values():
            names |= set(per_host)
        results = {}
        for host in sorted(names):
            row: dict[str, Any] = {
                col: int(stats.get(key, {}).get(host, 0)) for key, col in _STATS.items()
            }
            seen = self.hosts.get(host)
            row["duration"] = (
                round(seen.finished - seen.started, 2) if seen and seen.finished else 0
            )
            if seen and seen.message and (row["failed"] or row["unreachable"]):
                row["message"] = seen.message
                row["failed_task"] = seen.failed_task
            results[host] = row
        return results

    def _render(self) -> Any:
        from rich.table import Table

        done = sum(p.done for p in self.hosts.values())
        table = Table(title=f"{self.title}: {done} task results", title_justify="left")
        for column in ("host", "task", "done", "last"):
            table.add_column(column)
        for host, p in sorted(self.hosts.items()):
            table.add_row(host, p.task, str(p.done), p.last)
        return table


def _one_line(text: Any) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= 300 else line[:297] + "..."


def stdout_console() -> Any:
    """rich's console for stdout. Not a terminal (a pipe, cron's log, a CI job): no width to
    fit, so nothing is cut or wrapped: full host names and messages, one line each."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=100_000, soft_wrap=True)


def print_recap(record: RunRecord) -> None:
    from rich.table import Table

    console = stdout_console()
    table = Table(title=_headline(record), title_justify="left")
    columns = ("ok", "changed", "failed", "unreachable", "skipped")
    table.add_column("host")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("duration", justify="right")
    for host, row in record.hosts.items():
        style = "red" if row["failed"] or row["unreachable"] else None
        table.add_row(host, *(str(row[c]) for c in columns), f"{row['duration']:.1f}s", style=style)
    console.print(table)
    for host, row in record.hosts.items():
        if row.get("message"):
            console.print(f"[red]{host}[/red]: {row['message']}", highlight=False)
    for name, host, summary in report_summaries(record.data):
        console.print(f"{name} {host}: {summary}", highlight=False, markup=False)
    console.print(f"history: opsplay history show {record.id}", highlight=False)


def plain_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns aligned with two spaces, a header line, no trailing blanks (no terminal needed)."""
    table = [columns, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    return "".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n"
        for row in table
    )


def report_summaries(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(report, host, summary) for every per-host report a role recorded with a summary."""
    rows = []
    for name, per_host in sorted(data.items()):
        if isinstance(per_host, dict):
            for host, report in sorted(per_host.items()):
                if isinstance(report, dict) and report.get("summary"):
                    rows.append((name, host, str(report["summary"])))
    return rows


def _headline(record: RunRecord) -> str:
    mode = " (check)" if record.check else ""
    return (
        f"{record.what} on {record.env}{mode}: {record.status} "
        f"in {record.duration or 0:.1f}s, exit {record.exit_code}"
    )


def print_json(record: RunRecord) -> None:
    print(json.dumps(record.to_json(), indent=2, sort_keys=True))
