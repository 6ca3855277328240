"""An environment's maintenance calendar: when disruptive work may run, and when it may not.

ONE implementation, shared: the CLI (src/opsplay/maintenance_calendar.py loads
``INVENTORY_DIR/ENV/calendar.yml`` and refuses a run before starting Ansible) and the playbooks'
run gate (plugins/action/run_gate.py, on the controller: AWX and plain ansible-playbook runs
get the calendar as the variable ``opsplay_calendar``, the same data) import these decisions.
Standard library only (zoneinfo: Python 3.9+).

The calendar's data::

    timezone: Europe/Paris          # IANA name; default: the control node's
    windows:                        # per schedule: its window (start-end, local wall clock)
      daily: 09:00-09:30
      weekly: Mon 02:00-04:00
      monthly: 1 03:00-05:00        # day of the month (1-28)
      quarterly: 1 04:00-06:00      # day 1 of January, April, July, October
    freezes:                        # no disruptive run on these local days (inclusive)
      2026-11-26..2026-12-01: Black Friday
      2026-12-24: Christmas Eve

A window may cross midnight (``Sun 23:00-01:00``). Times are wall-clock times in the calendar's
zone, and a window keeps its wall-clock hours across daylight-saving changes: on the night the
clocks go forward a start inside the skipped hour moves forward by that hour (02:30 becomes
03:30) and a 02:00-04:00 window lasts 1 hour; on the night they go back, a start that occurs
twice is the first one and the same window lasts 3 hours.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class CalendarError(ValueError):
    """A calendar that does not parse: one line naming where and the bad entry."""


CALENDAR_FILE = "calendar.yml"
SCHEDULES = ("daily", "weekly", "monthly", "quarterly")
QUARTER_MONTHS = (1, 4, 7, 10)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WINDOW = re.compile(
    r"^(?:(?P<day>[A-Za-z]{3}|[0-9]{1,2})\s+)?"
    r"(?P<h1>[0-9]{1,2}):(?P<m1>[0-9]{2})\s*-\s*(?P<h2>[0-9]{1,2}):(?P<m2>[0-9]{2})$"
)
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?$")
_SEARCH_DAYS = 400  # a window of every schedule recurs within a quarter; freezes may be long


@dataclass(frozen=True)
class Window:
    """One schedule's recurring window, in local wall-clock time."""

    schedule: str
    start: dt.time
    end: dt.time  # earlier than start: the window ends the next day
    weekday: int | None = None  # 0 = Monday (weekly)
    day: int | None = None  # day of the month (monthly, quarterly)
    months: tuple[int, ...] = ()  # quarterly

    def text(self) -> str:
        hours = f"{self.start:%H:%M}-{self.end:%H:%M}"
        if self.weekday is not None:
            return f"{DAYS[self.weekday]} {hours}"
        if self.day is not None:
            return f"{self.day} {hours}"
        return hours

    def starts_on(self, day: dt.date) -> bool:
        if self.weekday is not None:
            return day.weekday() == self.weekday
        if self.day is not None:
            return day.day == self.day and (not self.months or day.month in self.months)
        return True


@dataclass(frozen=True)
class Freeze:
    first: dt.date
    last: dt.date
    reason: str

    def text(self) -> str:
        span = f"{self.first}" if self.first == self.last else f"{self.first}..{self.last}"
        return f"{span}: {self.reason}"


@dataclass(frozen=True)
class Occurrence:
    """One window on one day, as aware datetimes (UTC)."""

    window: Window
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # one line: why allowed, or why refused
    window: Occurrence | None = None  # the window the run is inside, when allowed
    next_window: Occurrence | None = None


@dataclass(frozen=True)
class Calendar:
    timezone: str
    windows: dict[str, Window]
    freezes: tuple[Freeze, ...]

    @property
    def zone(self) -> dt.tzinfo:
        return _zone(self.timezone)

    def occurrences(
        self, after: dt.datetime, schedules: tuple[str, ...] | None = None
    ) -> Iterator[Occurrence]:
        """Windows (of ``schedules``, default all) that end after ``after``, in start order,
        frozen ones included (``frozen`` says which)."""
        zone = self.zone
        first = after.astimezone(zone).date() - dt.timedelta(days=1)
        for offset in range(_SEARCH_DAYS):
            day = first + dt.timedelta(days=offset)
            found = []
            for name, window in self.windows.items():
                if schedules is not None and name not in schedules:
                    continue
                if window.starts_on(day):
                    start = _instant(day, window.start, zone)
                    end_day = day + dt.timedelta(days=1) if window.end <= window.start else day
                    end = _instant(end_day, window.end, zone)
                    if end > after:
                        found.append(Occurrence(window, start, end))
            yield from sorted(found, key=lambda o: o.start)

    def frozen(self, moment: dt.datetime) -> Freeze | None:
        day = moment.astimezone(self.zone).date()
        return next((f for f in self.freezes if f.first <= day <= f.last), None)

    def next_window(
        self, now: dt.datetime, schedules: tuple[str, ...] | None = None
    ) -> Occurrence | None:
        """The next window (starting after ``now``) outside every freeze."""
        for occurrence in self.occurrences(now, schedules):
            if occurrence.start > now and self.frozen(occurrence.start) is None:
                return occurrence
        return None

    def decide(self, now: dt.datetime, schedule: str | None = None) -> Decision:
        """May a disruptive run start at ``now``? Inside the window of ``schedule`` (a
        maintenance schedule's run) or of any schedule (an ad-hoc disruptive procedure), and
        outside every freeze."""
        names = (schedule,) if schedule else None
        if schedule is not None and schedule not in self.windows:
            return Decision(True, f"the calendar has no {schedule} window")
        local_now = now.astimezone(self.zone)
        freeze = self.frozen(now)
        upcoming = self.next_window(now, names)
        after = f"; next window {self._when(upcoming)}" if upcoming else ""
        if freeze is not None:
            return Decision(
                False,
                f"refused: change freeze {freeze.text()} ({self.timezone}), "
                f"now {local_now:%a %Y-%m-%d %H:%M}{after}",
                next_window=upcoming,
            )
        for occurrence in self.occurrences(now, names):
            if occurrence.start > now:
                break
            if occurrence.start <= now < occurrence.end:
                return Decision(
                    True,
                    f"inside the {occurrence.window.schedule} window "
                    f"{occurrence.window.text()} {self.timezone} (until "
                    f"{occurrence.end.astimezone(self.zone):%H:%M})",
                    window=occurrence,
                    next_window=upcoming,
                )
        which = (
            f"{schedule} window is {self.windows[schedule].text()}"
            if schedule
            else "windows are "
            + ", ".join(f"{w.schedule} {w.text()}" for w in self.windows.values())
        )
        return Decision(
            False,
            f"refused: {which} {self.timezone}, now {local_now:%a %H:%M}{after}",
            next_window=upcoming,
        )

    def _when(self, occurrence: Occurrence) -> str:
        local = occurrence.start.astimezone(self.zone)
        return f"{local:%a %Y-%m-%d %H:%M}"


def parse(data: Any, where: str = CALENDAR_FILE) -> Calendar:
    """A calendar from its YAML data; one-line errors naming ``where`` and the bad entry."""
    if not isinstance(data, dict):
        raise CalendarError(f"{where}: expected a mapping (timezone, windows, freezes)")
    unknown = set(data) - {"timezone", "windows", "freezes"}
    if unknown:
        raise CalendarError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
            "(expected timezone, windows, freezes)"
        )
    zone_name = str(data.get("timezone") or local_zone_name())
    try:
        _zone(zone_name)
    except (ValueError, KeyError, OSError):
        raise CalendarError(f"{where}: unknown timezone '{zone_name}' (an IANA name)") from None
    windows_data = data.get("windows") or {}
    if not isinstance(windows_data, dict) or set(windows_data) - set(SCHEDULES):
        raise CalendarError(f"{where}: windows: expected keys among {', '.join(SCHEDULES)}")
    windows = {name: _window(name, str(text), where) for name, text in windows_data.items()}
    freezes_data = data.get("freezes") or {}
    if not isinstance(freezes_data, dict):
        raise CalendarError(f"{where}: freezes: expected DATE or DATE..DATE: reason entries")
    freezes = tuple(_freeze(str(span), reason, where) for span, reason in freezes_data.items())
    return Calendar(timezone=zone_name, windows=windows, freezes=freezes)


def _window(name: str, text: str, where: str) -> Window:
    match = _WINDOW.match(text.strip())
    values = [int(match[k]) for k in ("h1", "m1", "h2", "m2")] if match else [-1, -1, -1, -1]
    ok = match is not None and all(0 <= v < 24 for v in values[::2])
    ok = ok and all(0 <= v < 60 for v in values[1::2]) and values[:2] != values[2:]
    day = match["day"] if match else None
    if name == "daily":
        ok = ok and day is None
    elif name == "weekly":
        ok = ok and day is not None and day.capitalize() in DAYS
    else:
        ok = ok and day is not None and day.isdigit() and 1 <= int(day) <= 28
    if not ok:
        examples = {"daily": "09:00-09:30", "weekly": "Mon 02:00-04:00"}
        example = examples.get(name, "1 03:00-05:00 (day 1-28, start-end)")
        raise CalendarError(f"{where}: bad {name} window '{text}' (e.g. {example})")
    start, end = dt.time(values[0], values[1]), dt.time(values[2], values[3])
    if name == "weekly":
        return Window(name, start, end, weekday=DAYS.index(str(day).capitalize()))
    if name in ("monthly", "quarterly"):
        months = QUARTER_MONTHS if name == "quarterly" else ()
        return Window(name, start, end, day=int(str(day)), months=months)
    return Window(name, start, end)


def _freeze(span: str, reason: Any, where: str) -> Freeze:
    match = _DATE.match(span.strip())
    try:
        first = dt.date.fromisoformat(match[1]) if match else None
        last = dt.date.fromisoformat(match[2]) if match and match[2] else first
    except ValueError:
        first = last = None
    if first is None or last is None or last < first or not str(reason or "").strip():
        raise CalendarError(
            f"{where}: bad freeze '{span}' (e.g. '2026-11-26..2026-12-01: Black Friday', "
            "dates in order, with a reason)"
        )
    return Freeze(first, last, str(reason).strip())


def _instant(day: dt.date, wall: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """The UTC instant of a local wall-clock time: fold=0, so a time that occurs twice is the
    first, and a time the clocks skip moves forward by the skipped span."""
    local = dt.datetime.combine(day, wall, tzinfo=zone)
    return local.astimezone(dt.timezone.utc)


def _zone(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def local_zone_name() -> str:
    """The control node's zone: TZ, /etc/timezone, or the /etc/localtime link; else UTC."""
    import os

    if os.environ.get("TZ", "").strip(":"):
        return os.environ["TZ"].strip(":")
    try:
        with open("/etc/timezone", encoding="utf-8") as handle:
            return handle.read().strip() or "UTC"
    except OSError:
        pass
    try:
        return os.path.realpath("/etc/localtime").split("zoneinfo/", 1)[1]
    except IndexError:
        return "UTC"


def to_data(calendar: Calendar) -> dict[str, Any]:
    """The calendar as data ``parse`` reads back to the same calendar, its zone resolved (what
    the CLI passes to the playbooks as ``opsplay_calendar``)."""
    return {
        "timezone": calendar.timezone,
        "windows": {name: window.text() for name, window in calendar.windows.items()},
        "freezes": {
            (f"{f.first}" if f.first == f.last else f"{f.first}..{f.last}"): f.reason
            for f in calendar.freezes
        },
    }


def refusal(what: str, env: str, reason: str, override: str) -> str:
    """The one line of a refused run, the same from the CLI and from the playbooks' gate."""
    return f"{what} on {env} {reason} ({override} overrides)"


@dataclass(frozen=True)
class Gate:
    """The run gate's answer: may the run start, its one line, and the window's end."""

    allowed: bool
    message: str
    window_end: str  # ISO-8601 UTC (YYYY-MM-DDTHH:MM:SSZ), or "" outside any window


def gate(
    data: Any,
    now: dt.datetime,
    *,
    what: str,
    env: str,
    schedule: str | None = None,
    disruptive: bool = False,
    outside_window: str = "",
    override: str = "--outside-window REASON",
) -> Gate:
    """The decision of a run that is ``disruptive`` or a maintenance ``schedule``'s, with the
    calendar ``data`` (None or empty: no calendar, always allowed). ``outside_window`` (the
    operator's reason) lets a refused run start; nothing then stops on the window's end.
    Raises CalendarError when the data does not parse."""
    if not data or not (disruptive or schedule):
        return Gate(True, "no calendar" if not data else "not disruptive", "")
    decision = parse(data, "opsplay_calendar").decide(now, schedule or None)
    if decision.allowed:
        end = decision.window.end if decision.window else None
        stamp = end.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if end else ""
        return Gate(True, decision.reason, stamp)
    if outside_window.strip():
        return Gate(True, f"outside its window: {outside_window.strip()}", "")
    return Gate(False, refusal(what, env, decision.reason, override), "")
