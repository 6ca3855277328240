"""plugins/module_utils/timestamps.py: opsplay's two timestamp formats, one clear error."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import timestamps

UTC = datetime.UTC
MOMENT = datetime.datetime(2026, 11, 24, 3, 15, 0, tzinfo=UTC)


def test_iso_and_stamp_format_a_utc_moment():
    assert timestamps.iso(MOMENT) == "2026-11-24T03:15:00Z"
    assert timestamps.stamp(MOMENT) == "20261124T031500Z"


def test_another_timezone_is_written_as_utc():
    paris = datetime.timezone(datetime.timedelta(hours=1))
    assert timestamps.iso(datetime.datetime(2026, 11, 24, 4, 15, tzinfo=paris)) == (
        "2026-11-24T03:15:00Z"
    )


def test_a_naive_moment_is_taken_as_utc():
    assert timestamps.stamp(datetime.datetime(2026, 11, 24, 3, 15)) == "20261124T031500Z"


def test_parse_round_trips_and_is_aware():
    assert timestamps.parse_iso("2026-11-24T03:15:00Z") == MOMENT
    assert timestamps.parse_stamp("20261124T031500Z") == MOMENT
    assert timestamps.parse_iso(timestamps.iso(MOMENT)).tzinfo is UTC
    assert timestamps.epoch("1970-01-01T00:01:40Z") == 100


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2026-11-24 03:15:00",  # no T, no Z
        "2026-11-24T03:15:00",  # no Z
        "2026-11-24T03:15:00+00:00",
        "20261124T031500Z",  # the file-name format where ISO is expected
        "2026-13-01T00:00:00Z",  # month 13
        " 2026-11-24T03:15:00Z",
    ],
)
def test_a_bad_iso_text_is_one_error_naming_it(value):
    with pytest.raises(timestamps.TimestampError) as info:
        timestamps.parse_iso(value)
    message = str(info.value)
    assert message == f"not a timestamp: {value!r} (expected 2026-11-24T03:15:00Z)"
    assert "\n" not in message


@pytest.mark.parametrize("value", [None, 1700000000, 17.5, ["2026-11-24T03:15:00Z"], {}])
def test_a_value_that_is_not_text_is_the_same_error_not_a_type_error(value):
    with pytest.raises(timestamps.TimestampError, match=r"^not a timestamp: "):
        timestamps.parse_iso(value)


def test_a_bad_stamp_names_the_stamp_format():
    with pytest.raises(timestamps.TimestampError, match=r"expected 20261124T031500Z\)$"):
        timestamps.parse_stamp("2026-11-24T03:15:00Z")


def test_the_error_is_a_value_error_for_callers_that_catch_those():
    assert issubclass(timestamps.TimestampError, ValueError)


def test_age_in_whole_seconds_from_text_or_moment():
    at = MOMENT + datetime.timedelta(seconds=90, microseconds=999_000)
    assert timestamps.age_seconds("2026-11-24T03:15:00Z", at) == 90
    assert timestamps.age_seconds(MOMENT, at) == 90


def test_a_future_time_has_a_negative_age():
    assert timestamps.age_seconds("2026-11-24T03:16:00Z", MOMENT) == -60


def test_age_of_bad_text_raises_the_one_error():
    with pytest.raises(timestamps.TimestampError):
        timestamps.age_seconds("yesterday", MOMENT)


def test_now_is_aware_utc_and_formats():
    moment = timestamps.now()
    assert moment.tzinfo is UTC
    assert timestamps.parse_iso(timestamps.iso(moment)) == moment.replace(microsecond=0)
