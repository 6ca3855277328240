"""opsplay backups --env ENV: the PostgreSQL backups of an environment, per host and database.

Runs ``playbooks/queries/backups.yml`` (the pg_backup role's read-only ``inventory`` entry point),
which reads every backup's manifest on each db_servers host and saves one JSON document into
this run's directory; this command then shows, per host and database, the newest backup (age,
size, verification), the last restore test and the number of backups, and warns about each
database whose newest *good* backup is older than ``--max-age`` or missing.

A backup is good when it was verified (by the backup run, or a later one) and its archive is
still that archive: the listing compares each archive's size with its manifest every time (a
stat per file), so a truncated or deleted archive is bad at once, with the reason; a byte
changed in place keeps the size, and only ``--verify`` (every archive read against its
checksum) or the next backup run's re-verification finds it.

Read-only, so unlike ``run`` it neither asks for confirmation in protected environments nor
takes the environment lock: a listing must work while a backup runs (the backup module writes
every file under a temporary name and renames it into place, so a listing never sees a half
backup). The run is kept in the history like any other.

Exit codes: those of the run (3 a host failed, 4 unreachable, ...), else 3 (``HOSTS_FAILED``)
when a database has no good backup newer than ``--max-age``, else 0.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from opsplay.ages import format_age
from opsplay.errors import ExitCode, OpsplayError
from opsplay.options import query_options

if TYPE_CHECKING:
    from opsplay.environment import Environment
    from opsplay.execute import Channel
    from opsplay.settings import Settings
    from opsplay.state import RunRecord

DEFAULT_MAX_AGE = "26h"
GLOBALS = "_globals"  # the pg_dumpall --globals-only backups (roles, tablespaces)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")


def parse_max_age(text: str) -> int:
    """``90m``, ``26h``, ``2d`` (also ``s``, ``w``; a bare number is seconds) -> seconds."""
    match = _AGE.match(text or "")
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"] if match else 0
    if seconds <= 0:
        raise OpsplayError(
            f"bad --max-age '{text}': expected a positive number with a unit s, m, h, d or w "
            "(e.g. 90m, 26h, 2d)"
        )
    return seconds


def format_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _age(text: Any, now: datetime) -> float | None:
    moment = _parse_time(text)
    return None if moment is None else (now - moment).total_seconds()


def summarize(
    document: dict[str, Any],
    now: datetime,
    max_age: int,
    failed_hosts: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The saved listing, per host and database, judged against ``max_age`` (seconds).

    Every database of a host is shown: those with backups, those the server has (or
    ``pg_backup_databases`` names) and the globals when they are backed up; one without a
    good backup is ``missing``, one whose newest good backup ended longer ago than ``max_age``
    is ``stale``.
    """
    hosts: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for host, listing in sorted((document.get("hosts") or {}).items()):
        by_db: dict[str, list[dict[str, Any]]] = {}
        for backup in listing.get("backups") or []:
            by_db.setdefault(str(backup.get("database")), []).append(backup)
        expected = set(listing.get("databases") or [])
        if listing.get("globals"):
            expected.add(GLOBALS)
        databases = {}
        for name in sorted(set(by_db) | expected):
            entry = _database(by_db.get(name, []), now, max_age)
            entry["database"] = name
            databases[name] = entry
            if entry["status"] != "ok":
                problems.append(
                    {"host": host, "database": name, "status": entry["status"], "why": entry["why"]}
                )
        hosts[host] = {
            "backup_dir": listing.get("backup_dir"),
            "server_error": listing.get("server_error") or "",
            "databases": databases,
        }
    failed = dict(failed_hosts or {})
    for host in document.get("hosts_without_listing") or []:
        failed.setdefault(host, "no listing (the host failed or was unreachable)")
    return {
        "env": document.get("env"),
        "generated_at": document.get("generated_at"),
        "max_age_seconds": max_age,
        "hosts": hosts,
        "failed_hosts": failed,
        "problems": problems,
    }


def backup_problem(backup: dict[str, Any]) -> str:
    """Why a listed backup is not good ('' when it is): what the listing found on disk now
    (truncated, missing, checksum), else its recorded verification's problem."""
    if backup.get("good"):
        return ""
    on_disk = backup.get("on_disk") or {}
    if on_disk.get("ok") is False and on_disk.get("problem"):
        return str(on_disk["problem"])
    verified = backup.get("verified") or {}
    return str(verified.get("problem") or "not verified or unreadable")


def _database(backups: list[dict[str, Any]], now: datetime, max_age: int) -> dict[str, Any]:
    """One database's backups (oldest first, as the module lists them) summed up."""
    good = [b for b in backups if b.get("good")]
    newest = backups[-1] if backups else None
    newest_good = good[-1] if good else None
    tests = [
        dict(b["restore_test"], backup=b.get("name"))
        for b in backups
        if isinstance(b.get("restore_test"), dict) and b["restore_test"].get("at")
    ]
    last_test = max(tests, key=lambda t: str(t["at"])) if tests else None
    if last_test is not None:
        last_test["age_seconds"] = _age(last_test["at"], now)
    good_age = _age(newest_good.get("ended"), now) if newest_good else None
    newest_problem = backup_problem(newest) if newest else ""
    # The newest backup's own problem, when it is the reason there is no fresh good one.
    because = f"; newest {newest['name']}: {newest_problem}" if newest and newest_problem else ""
    if newest_good is None:
        status = "missing"
        bad = len(backups) - len(good)
        why = f"no good backup ({bad} bad{because})" if bad else "no backup"
    elif good_age is None or good_age > max_age:
        status = "stale"
        why = (
            f"newest good backup is {format_age(good_age)} old (max {format_age(max_age)})"
            + because
        )
    else:
        status, why = "ok", ""
    return {
        "count": len(backups),
        "good": len(good),
        "bad": len(backups) - len(good),
        "newest": newest,
        "newest_problem": newest_problem,
        "newest_age_seconds": _age(newest.get("ended"), now) if newest else None,
        "newest_good": newest_good,
        "newest_good_age_seconds": good_age,
        "last_restore_test": last_test,
        "status": status,
        "why": why,
        "backups": backups,
    }


COLUMNS = (
    "host",
    "database",
    "backups",
    "newest",
    "age",
    "size",
    "verified",
    "restore test",
    "status",
)


def rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per host and database, in COLUMNS order."""
    out = []
    for host, entry in summary["hosts"].items():
        for name, db in entry["databases"].items():
            newest = db["newest"] or {}
            problem = backup_problem(newest) if newest else ""
            check = "-" if not newest else f"BAD: {problem}" if problem else "ok"
            test = db["last_restore_test"]
            if name == GLOBALS:
                tested = "n/a"  # globals are verified, never restore-tested
            elif test is None:
                tested = "never"
            else:
                verdict = "ok" if test.get("ok") else "FAILED"
                tested = f"{verdict} {format_age(test.get('age_seconds'))} ago"
            count = str(db["count"]) + (f" ({db['bad']} bad)" if db["bad"] else "")
            status = db["status"] if db["status"] == "ok" else db["status"].upper()
            out.append(
                (
                    host,
                    name,
                    count,
                    newest.get("name") or "-",
                    format_age(db["newest_age_seconds"]),
                    format_size(newest.get("size_bytes")),
                    check,
                    tested,
                    status,
                )
            )
    return out


def render_plain(summary: dict[str, Any]) -> str:
    from opsplay.display import plain_table

    return plain_table(COLUMNS, rows(summary))


def warnings(summary: dict[str, Any]) -> list[str]:
    """One line per database without a good backup newer than the threshold."""
    return [f"{p['host']} {p['database']}: {p['why']}" for p in summary["problems"]]


def exit_code(summary: dict[str, Any], run_code: int) -> int:
    if run_code != ExitCode.OK:
        return run_code
    return int(ExitCode.HOSTS_FAILED) if summary["problems"] else int(ExitCode.OK)


def _print_table(summary: dict[str, Any], title: str) -> None:
    """On a terminal: a rich table, problems in red; plain text when it would not fit."""
    from rich import box
    from rich.table import Table

    from opsplay.display import stdout_console

    console = stdout_console()
    plain = render_plain(summary)
    if max(len(line) for line in plain.splitlines()) + 2 * len(COLUMNS) > console.width:
        click.echo(plain, nl=False)  # rich would cut the names; let the terminal wrap lines
        return
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("age", "size") else "left")
    previous = None
    for row in rows(summary):
        if previous is not None and row[0] != previous:
            table.add_section()
        previous = row[0]
        problem = row[-1] != "ok" or row[6].startswith("BAD") or "FAILED" in row[7]
        table.add_row(*row, style="red" if problem else None)
    console.print(table)


def collect(
    settings: Settings,
    env_name: str | None,
    limit: str | None,
    vault_password_file: str | None,
    verbosity: int,
    max_age_seconds: int,
    verify: bool,
    as_json: bool = False,
    channel: Channel | None = None,
) -> tuple[Environment, RunRecord, dict[str, Any]]:
    """Run the read-only backups query and judge its listing: (env, run record, summary).
    The CLI prints the summary; ``opsplay.api.backups`` returns it as Backup objects."""
    import json

    from opsplay.execute import run_query

    env, record, listing = run_query(
        settings,
        "backups",
        env_name,
        limit,
        as_json,
        vault_password_file,
        verbosity,
        run_file_var="pg_backup_inventory_file",
        extravars={"pg_backup_inventory_verify": True} if verify else None,
        channel=channel,
    )
    try:
        document = json.loads(listing.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        document = None
    failed = {
        host: row.get("message") or "failed"
        for host, row in record.hosts.items()
        if row.get("failed") or row.get("unreachable")
    }
    if document is None:
        reasons = "; ".join(f"{h}: {m}" for h, m in failed.items()) or (
            "no db_servers host matched" if record.exit_code == ExitCode.OK else record.status
        )
        raise OpsplayError(
            f"no backup listing for '{env.name}' ({reasons}); "
            f"see: opsplay history show {record.id}",
            ExitCode(record.exit_code or ExitCode.ERROR),
        )
    summary = summarize(document, datetime.now(UTC), max_age_seconds, failed)
    summary["run"] = {"id": record.id, "status": record.status, "exit_code": record.exit_code}
    summary["checked"] = "checksums" if verify else "size"
    return env, record, summary


@click.command("backups")
@query_options
@click.option(
    "--max-age",
    default=DEFAULT_MAX_AGE,
    show_default=True,
    envvar="OPSPLAY_BACKUP_MAX_AGE",
    metavar="AGE",
    help="Warn (exit 3) when a database's newest good backup is older (90m, 26h, 2d).",
)
@click.option(
    "--verify",
    is_flag=True,
    envvar="OPSPLAY_BACKUP_VERIFY",
    help="Also compare every archive with its checksum: reads every archive whole on the hosts "
    "(as long as reading all backups from disk takes). Without it each archive's size is "
    "compared with its manifest, which finds a truncated or deleted archive but not a byte "
    "changed in place.",
)
@click.pass_obj
def command(
    settings: Settings,
    env_name: str | None,
    limit: str | None,
    as_json: bool,
    vault_password_file: str | None,
    verbosity: int,
    max_age: str,
    verify: bool,
) -> int:
    """List the PostgreSQL backups per host and database (read-only; no lock, no confirmation).

    Shows the newest backup (age, size, verified), the last restore test and the number of
    backups; warns on stderr for each database whose newest good backup is older than
    --max-age or missing, and then exits 3. A backup is good when it was verified and its
    archive still has its recorded size (with --verify: its checksum); else it is BAD with
    the reason (e.g. "truncated: 1234 of 5678 bytes").
    """
    import json
    import sys

    env, record, summary = collect(
        settings,
        env_name,
        limit,
        vault_password_file,
        verbosity,
        parse_max_age(max_age),
        verify,
        as_json=as_json,
    )
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    elif sys.stdout.isatty():
        _print_table(summary, f"backups on {env.name} (max age {max_age})")
    else:
        click.echo(render_plain(summary), nl=False)
    for host, message in sorted(summary["failed_hosts"].items()):
        click.echo(f"opsplay: {host}: {message}", err=True)
    for host, entry in summary["hosts"].items():
        if entry["server_error"]:
            click.echo(
                f"opsplay: {host}: cannot list the server's databases, so a database that has "
                f"never been backed up is not shown ({entry['server_error']})",
                err=True,
            )
    for line in warnings(summary):
        click.echo(f"opsplay: warning: {line}", err=True)
    return exit_code(summary, int(record.exit_code or 0))
