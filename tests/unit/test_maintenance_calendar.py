"""The maintenance calendar (src/opsplay/maintenance_calendar.py): parsing with one-line errors,
windows on their days, crossing midnight, both daylight-saving changes, freezes, the next
window, and the decision a disruptive run gets."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from opsplay.errors import OpsplayError
from opsplay.maintenance_calendar import parse

UTC = dt.UTC
PARIS = {"timezone": "Europe/Paris"}


def at(text: str) -> dt.datetime:
    """An instant given as UTC text."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def calendar(**windows: str):
    return parse({**PARIS, "windows": windows})


def test_weekly_window_allows_inside_refuses_outside_with_the_next_window():
    cal = calendar(weekly="Mon 02:00-04:00")
    inside = cal.decide(at("2026-12-07T01:30"), "weekly")  # Mon 02:30 Paris (UTC+1)
    assert inside.allowed and "until 04:00" in inside.reason
    refused = cal.decide(at("2026-12-04T10:03"), "weekly")  # Fri 11:03 Paris
    assert not refused.allowed
    assert refused.reason == (
        "refused: weekly window is Mon 02:00-04:00 Europe/Paris, now Fri 11:03; "
        "next window Mon 2026-12-07 02:00"
    )
    assert refused.next_window.start == at("2026-12-07T01:00")
    # the end is exclusive, the start inclusive
    assert cal.decide(at("2026-12-07T01:00"), "weekly").allowed
    assert not cal.decide(at("2026-12-07T03:00"), "weekly").allowed


def test_an_ad_hoc_disruptive_run_may_use_any_window():
    cal = calendar(daily="09:00-09:30", weekly="Mon 02:00-04:00")
    assert cal.decide(at("2026-12-04T08:10")).allowed  # Fri 09:10 Paris: the daily window
    refused = cal.decide(at("2026-12-04T10:03"))
    assert "windows are daily 09:00-09:30, weekly Mon 02:00-04:00" in refused.reason
    assert "next window Sat 2026-12-05 09:00" in refused.reason


def test_a_window_crossing_midnight():
    cal = calendar(weekly="Sun 23:00-01:00")
    assert cal.decide(at("2026-12-06T23:30"), "weekly").allowed  # Mon 00:30 Paris
    assert cal.decide(at("2026-12-06T22:00"), "weekly").allowed  # Sun 23:00 Paris
    assert not cal.decide(at("2026-12-07T00:00"), "weekly").allowed  # Mon 01:00 Paris


def test_the_night_the_clocks_go_forward():
    # Europe/Paris 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:00-04:00 lasts one hour
    cal = calendar(weekly="Sun 02:00-04:00")
    (first,) = [o for o in cal.occurrences(at("2026-03-28T12:00"), ("weekly",))][:1]
    assert first.start == at("2026-03-29T01:00")  # 03:00 CEST, the moment the clocks jump
    assert first.end == at("2026-03-29T02:00")  # 04:00 CEST
    assert first.end - first.start == dt.timedelta(hours=1)
    skipped = calendar(weekly="Sun 02:30-04:00")
    (start,) = [o.start for o in skipped.occurrences(at("2026-03-28T12:00"), ("weekly",))][:1]
    assert start == at("2026-03-29T01:30")  # 03:30 CEST: moved forward by the skipped hour


def test_the_night_the_clocks_go_back():
    # Europe/Paris 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-04:00 lasts three hours
    cal = calendar(weekly="Sun 02:00-04:00")
    (window,) = [o for o in cal.occurrences(at("2026-10-24T12:00"), ("weekly",))][:1]
    assert window.start == at("2026-10-25T00:00")  # the first 02:00 (CEST)
    assert window.end == at("2026-10-25T03:00")  # 04:00 CET
    assert cal.decide(at("2026-10-25T01:30"), "weekly").allowed  # the second 02:30 (CET)


def test_monthly_and_quarterly_windows():
    cal = calendar(monthly="1 03:00-05:00", quarterly="1 04:00-06:00")
    nxt = cal.next_window(at("2026-11-30T12:00"), ("quarterly",))
    assert nxt.start == at("2027-01-01T03:00")  # day 1 of January, 04:00 CET
    assert cal.next_window(at("2026-11-30T12:00"), ("monthly",)).start == at("2026-12-01T02:00")


def test_a_freeze_refuses_even_inside_a_window_and_is_skipped_for_the_next_one():
    cal = parse(
        {
            **PARIS,
            "windows": {"weekly": "Mon 02:00-04:00"},
            "freezes": {"2026-11-26..2026-12-01": "Black Friday", "2026-12-07": "release"},
        }
    )
    refused = cal.decide(at("2026-11-30T01:30"), "weekly")  # Mon 02:30, inside the window
    assert not refused.allowed
    assert refused.reason.startswith(
        "refused: change freeze 2026-11-26..2026-12-01: Black Friday (Europe/Paris), "
        "now Mon 2026-11-30 02:30"
    )
    # the next Monday is frozen too (a one-day freeze): the next window is the one after
    assert "next window Mon 2026-12-14 02:00" in refused.reason
    # the freeze ends with its last local day
    assert cal.decide(at("2026-12-01T22:59"), None).reason.startswith("refused: change freeze")
    assert not cal.decide(at("2026-12-01T23:00"), None).reason.startswith("refused: change freeze")


def test_a_schedule_without_a_window_is_not_restricted():
    assert calendar(weekly="Mon 02:00-04:00").decide(at("2026-12-04T10:00"), "monthly").allowed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"windows": {"weekly": "Mon 02:00"}},
            "bad weekly window 'Mon 02:00' (e.g. Mon 02:00-04:00)",
        ),
        ({"windows": {"weekly": "Xyz 02:00-04:00"}}, "bad weekly window"),
        ({"windows": {"daily": "25:00-26:00"}}, "bad daily window"),
        ({"windows": {"monthly": "31 03:00-05:00"}}, "bad monthly window"),
        ({"windows": {"daily": "09:00-09:00"}}, "bad daily window"),
        ({"windows": {"yearly": "09:00-10:00"}}, "windows: expected keys among daily"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        (
            {"freezes": {"2026-12-01..2026-11-26": "backwards"}},
            "bad freeze '2026-12-01..2026-11-26'",
        ),
        ({"freezes": {"2026-02-30": "no such day"}}, "bad freeze '2026-02-30'"),
        ({"freezes": {"2026-12-24": ""}}, "with a reason"),
        ({"window": {}}, "unknown key(s) window"),
        ([], "expected a mapping"),
    ],
)
def test_bad_calendars_are_one_line(data, message):
    with pytest.raises(OpsplayError) as raised:
        parse(data, "inventories/prod/calendar.yml")
    text = str(raised.value)
    assert text.startswith("inventories/prod/calendar.yml: ") and message in text
    assert "\n" not in text


# --- the calendar in the CLI: refusals before any host, --outside-window, schedules, status


def write_calendar(inventories, env: str, text: str) -> None:
    (inventories / env / "calendar.yml").write_text(text)


NEVER_NOW = (  # a window on a day that is not today, far from now: every run now is outside
    "timezone: UTC\nwindows:\n  weekly: {day} 03:00-03:01\n"
)


def not_today() -> str:
    from opsplay.maintenance_calendar import DAYS

    return DAYS[(dt.datetime.now(UTC).weekday() + 3) % 7]


def test_a_schedule_outside_its_window_is_refused_recorded_as_missed_and_shown(
    opsplay, inventories
):
    from opsplay.commands.status import last_schedule_runs
    from opsplay.settings import Settings
    from opsplay.state import History

    write_calendar(inventories, "dev", NEVER_NOW.format(day=not_today()))
    result = opsplay("maintenance", "weekly", "--env", "dev")
    assert result.code == 7, result
    (line,) = result.err.strip().splitlines()
    assert line.startswith("opsplay: maintenance weekly on dev refused: weekly window is ")
    assert line.endswith("(--outside-window REASON overrides)")
    records = History(Settings.from_env().state()).records("dev")
    assert [(r.what, r.status, r.exit_code) for r in records] == [
        ("maintenance weekly", "missed", 7)
    ]
    missed = last_schedule_runs(records)["weekly"]["missed"]
    assert missed["count"] == 1 and missed["reason"].startswith("refused: weekly window is")
    # not disruptive, or a dry run: never refused (they would now run: the hosts are fake, so
    # the run itself fails later, unreachable, not refused with 7)
    assert opsplay("run", "health", "--env", "dev", "--json").code == 4
    assert opsplay("maintenance", "weekly", "--env", "dev", "--check", "--json").code == 4


def test_outside_window_needs_a_reason_and_the_guard(opsplay, inventories):
    write_calendar(inventories, "dev", NEVER_NOW.format(day=not_today()))
    empty = opsplay("run", "reindex", "--env", "dev", "--outside-window", " ")
    assert empty.code == 2 and "--outside-window needs a reason" in empty.err
    unconfirmed = opsplay("run", "reindex", "--env", "dev", "--outside-window", "incident 42")
    assert unconfirmed.code == 6
    assert "it runs outside the maintenance calendar's windows" in unconfirmed.err
    ran = opsplay(
        "run", "reindex", "--env", "dev", "--outside-window", "incident 42", "--yes", "--json"
    )
    assert ran.code == 4  # it ran: the example hosts are unreachable
    assert json.loads(ran.out)["outside_window"] == "incident 42"


def test_maintenance_mode_off_is_never_refused(opsplay, inventories):
    """Putting the site back is not disruptive: at 9 a.m. or in a freeze it must run (the CLI and
    the playbook's gate agree: the gate would refuse with 2 before any host, not fail with 4)."""
    write_calendar(inventories, "dev", NEVER_NOW.format(day=not_today()))
    assert opsplay("maintenance-mode", "on", "--env", "dev").code == 7
    assert opsplay("maintenance-mode", "off", "--env", "dev", "--json").code == 4
    ran = opsplay("run", "maintenance-mode", "--env", "dev", "-e", "state=off", "--json")
    assert ran.code == 4  # it ran: the example hosts are unreachable


def test_schedule_check_and_show(opsplay, inventories):
    write_calendar(
        inventories,
        "prod",
        "timezone: Europe/Paris\nwindows:\n  weekly: Mon 02:00-04:00\n"
        "freezes:\n  2026-12-24..2026-12-26: Christmas\n",
    )
    inside = opsplay("schedule", "check", "--env", "prod", "--at", "2026-12-07T02:30")
    assert inside.code == 0 and inside.out.startswith("allowed: inside the weekly window")
    frozen = opsplay("schedule", "check", "--env", "prod", "--at", "2026-12-24T12:00+01:00")
    assert frozen.code == 7 and "change freeze 2026-12-24..2026-12-26: Christmas" in frozen.out
    shown = opsplay("schedule", "show", "--env", "prod", "--format", "systemd").out
    assert "# next weekly window: Mon " in shown and "UTC): opsplay maintenance weekly" in shown
    assert "# freeze 2026-12-24..2026-12-26: Christmas" in shown
    assert "OnCalendar=Mon *-*-* 02:00:00 Europe/Paris" in shown
    assert "opsplay-prod-daily" not in shown  # no window: the calendar does not run it
    cron = opsplay("schedule", "show", "--env", "prod")  # this node's zone is not Paris
    assert cron.code == 2 and "use --format systemd" in cron.err
    (inventories / "prod" / "schedule.yml").write_text("weekly: Mon 02:00\n")
    both = opsplay("schedule", "show", "--env", "prod", "--format", "systemd")
    assert both.code == 2 and "remove schedule.yml" in both.err


@pytest.mark.skipif(
    __import__("shutil").which("systemd-analyze") is None, reason="needs systemd-analyze"
)
def test_every_generated_timer_fires_inside_its_window(opsplay, inventories, tmp_path):
    import subprocess

    from opsplay.maintenance_calendar import load

    write_calendar(
        inventories,
        "prod",
        "timezone: America/New_York\nwindows:\n  daily: 23:30-00:30\n"
        "  weekly: Sun 02:00-04:00\n  monthly: 1 03:00-05:00\n  quarterly: 1 04:00-06:00\n",
    )
    root = tmp_path / "root"
    args = ("schedule", "install", "--env", "prod", "--format", "systemd", "--root", str(root))
    assert opsplay(*args, "--log-dir", str(root / "log"), "--status-every", "0").code == 0
    calendar = load(inventories / "prod")
    timers = sorted((root / "etc/systemd/system").glob("*.timer"))
    assert len(timers) == 4
    for timer in timers:
        spec = timer.read_text().split("OnCalendar=")[1].splitlines()[0]
        out = subprocess.run(
            ["systemd-analyze", "calendar", "--iterations", "3", spec],
            capture_output=True,
            text=True,
            check=True,
            env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
        ).stdout
        elapses = [
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if "elapse" in line.lower() and "UTC" in line
        ]
        assert elapses, out
        schedule = timer.name.removeprefix("opsplay-prod-").removesuffix(".timer")
        for text in elapses:
            when = dt.datetime.strptime(text.split(" ", 1)[1][:19], "%Y-%m-%d %H:%M:%S")
            decision = calendar.decide(when.replace(tzinfo=UTC), schedule)
            assert decision.allowed, (schedule, text, decision.reason)
