"""opsplay's timestamp formats, in one place (host side; shipped with the modules that import it).

Two formats, both UTC, second precision:

- ``ISO`` ``2026-11-24T03:15:00Z``: inside manifests and records (pg_backup's ``started``,
  ``ended``, ``verified.at``, ``restore_test.at``; maintenance_mode's flag ``time``);
- ``STAMP`` ``20261124T031500Z``: inside file names (``DB_20261124T031500Z.dump``).

Times are timezone-aware ``datetime`` objects in UTC. ``parse_iso``/``parse_stamp`` accept exactly
their format and raise ``TimestampError`` (a ``ValueError``) with one line naming the value
otherwise, whatever the input's type (None, a number, a string in another format).
"""

from __future__ import annotations

import datetime

ISO = "%Y-%m-%dT%H:%M:%SZ"
STAMP = "%Y%m%dT%H%M%SZ"

_EXAMPLES = {ISO: "2026-11-24T03:15:00Z", STAMP: "20261124T031500Z"}


class TimestampError(ValueError):
    """A value that is not a timestamp of the expected format (the message names it)."""


def now() -> datetime.datetime:
    """The current time, UTC, timezone-aware."""
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment: datetime.datetime) -> str:
    """``moment`` as ISO (manifests, records); a naive datetime is taken as UTC."""
    return _utc(moment).strftime(ISO)


def stamp(moment: datetime.datetime) -> str:
    """``moment`` as STAMP (file names); a naive datetime is taken as UTC."""
    return _utc(moment).strftime(STAMP)


def parse_iso(text: object) -> datetime.datetime:
    """The UTC time of an ISO timestamp; TimestampError on anything else."""
    return _parse(text, ISO)


def parse_stamp(text: object) -> datetime.datetime:
    """The UTC time of a STAMP; TimestampError on anything else."""
    return _parse(text, STAMP)


def epoch(then: object) -> int:
    """Seconds since 1970 of an ISO timestamp or a datetime (TimestampError on bad input)."""
    moment = then if isinstance(then, datetime.datetime) else parse_iso(then)
    return int(_utc(moment).timestamp())


def age_seconds(then: object, at: datetime.datetime | None = None) -> int:
    """Whole seconds from ``then`` (ISO text or datetime) to ``at`` (default: now).

    Negative when ``then`` is in the future (a clock set back): callers see it, nothing hides it.
    """
    moment = then if isinstance(then, datetime.datetime) else parse_iso(then)
    return int(((at or now()) - _utc(moment)).total_seconds())


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _parse(text: object, fmt: str) -> datetime.datetime:
    if not isinstance(text, str):
        raise TimestampError("not a timestamp: %r (expected text like %s)" % (text, _EXAMPLES[fmt]))
    try:
        moment = datetime.datetime.strptime(text, fmt)
    except ValueError:
        raise TimestampError("not a timestamp: %r (expected %s)" % (text, _EXAMPLES[fmt])) from None
    return moment.replace(tzinfo=datetime.timezone.utc)
