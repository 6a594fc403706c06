"""The Scheduler grammar and next-fire evaluation, against a table worked out by hand.

Calendar facts the table relies on: 2026-01-01 is a Thursday. Europe/Berlin springs forward on
2026-03-29 (02:00 CET -> 03:00 CEST) and falls back on 2026-10-25 (03:00 CEST -> 02:00 CET);
America/New_York springs forward on 2026-03-08 (02:00 EST -> 03:00 EDT) and falls back on
2026-11-01 (02:00 EDT -> 01:00 EST). Scheduler skips a local time that does not exist and fires
once, at the first occurrence, for a local time that occurs twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from crq.schedule import (
    ScheduleError,
    build_schedule,
    parse_expression,
    shortest_interval,
    zone_of,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# (expression, zone, after, expected next fires as ISO times with their local offset)
NEXT_FIRES = [
    # weekly in Berlin, either side of the spring change
    ("cron(0 6 ? * MON *)", "Europe/Berlin", "2026-03-20T00:00Z", ["2026-03-23T06:00+01:00"]),
    ("cron(0 6 ? * MON *)", "Europe/Berlin", "2026-03-25T00:00Z", ["2026-03-30T06:00+02:00"]),
    # a local time clocks jump over is skipped, not moved
    (
        "cron(30 2 * * ? *)",
        "Europe/Berlin",
        "2026-03-28T12:00Z",
        ["2026-03-30T02:30+02:00", "2026-03-31T02:30+02:00"],
    ),
    # a local time that occurs twice fires once, the first time
    (
        "cron(30 2 * * ? *)",
        "Europe/Berlin",
        "2026-10-24T12:00Z",
        ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
    ),
    (
        "cron(0 * * * ? *)",
        "Europe/Berlin",
        "2026-03-29T00:00Z",
        ["2026-03-29T03:00+02:00", "2026-03-29T04:00+02:00"],
    ),
    (
        "cron(0 * * * ? *)",
        "Europe/Berlin",
        "2026-10-24T23:30Z",
        ["2026-10-25T02:00+02:00", "2026-10-25T03:00+01:00"],
    ),
    (
        "cron(0 0 * * ? *)",
        "Europe/Berlin",
        "2026-03-28T22:00Z",
        ["2026-03-29T00:00+01:00", "2026-03-30T00:00+02:00"],
    ),
    ("cron(0 3 * * ? *)", "Europe/Berlin", "2026-03-28T12:00Z", ["2026-03-29T03:00+02:00"]),
    ("cron(0 2 * * ? *)", "America/New_York", "2026-03-07T12:00Z", ["2026-03-09T02:00-04:00"]),
    (
        "cron(30 1 * * ? *)",
        "America/New_York",
        "2026-10-31T12:00Z",
        ["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"],
    ),
    (
        "cron(0 1 * * ? *)",
        "America/New_York",
        "2026-11-01T04:00Z",
        ["2026-11-01T01:00-04:00", "2026-11-02T01:00-05:00"],
    ),
    ("cron(30 2 * * ? *)", "America/New_York", "2026-10-31T12:00Z", ["2026-11-01T02:30-05:00"]),
    (
        "cron(0 6 ? * MON *)",
        "America/New_York",
        "2026-03-01T00:00Z",
        ["2026-03-02T06:00-05:00", "2026-03-09T06:00-04:00"],
    ),
    # L, W, #
    ("cron(0 12 L * ? *)", "UTC", "2026-02-01T00:00Z", ["2026-02-28T12:00Z"]),
    ("cron(0 12 L * ? *)", "UTC", "2028-02-01T00:00Z", ["2028-02-29T12:00Z"]),
    ("cron(59 23 L 12 ? *)", "UTC", "2026-01-01T00:00Z", ["2026-12-31T23:59Z"]),
    ("cron(0 9 15W * ? *)", "UTC", "2026-08-01T00:00Z", ["2026-08-14T09:00Z"]),  # 15th: Sat
    ("cron(0 9 1W * ? *)", "UTC", "2026-07-31T12:00Z", ["2026-08-03T09:00Z"]),  # 1st: Sat
    ("cron(0 9 31W * ? *)", "UTC", "2026-05-20T00:00Z", ["2026-05-29T09:00Z"]),  # 31st: Sun
    ("cron(0 10 ? * 6#3 *)", "UTC", "2026-03-01T00:00Z", ["2026-03-20T10:00Z"]),
    (
        "cron(0 10 ? * 2#5 *)",
        "UTC",
        "2026-03-01T00:00Z",
        ["2026-03-30T10:00Z", "2026-06-29T10:00Z"],
    ),
    ("cron(0 0 ? * 3#2 *)", "UTC", "2026-01-01T00:00Z", ["2026-01-13T00:00Z"]),
    ("cron(0 0 ? * L *)", "UTC", "2026-01-01T00:00Z", ["2026-01-03T00:00Z"]),  # Saturday
    # day-of-week: 1 is Sunday
    ("cron(0 8 ? * 1 *)", "UTC", "2026-01-01T00:00Z", ["2026-01-04T08:00Z"]),
    ("cron(0 8 ? * 7 *)", "UTC", "2026-01-01T00:00Z", ["2026-01-03T08:00Z"]),
    ("cron(0 12 ? * SUN-TUE *)", "UTC", "2026-01-01T00:00Z", ["2026-01-04T12:00Z"]),
    ("cron(0 8 ? * MON-FRI *)", "UTC", "2026-01-02T09:00Z", ["2026-01-05T08:00Z"]),
    (
        "cron(15 10 ? * 2,4,6 *)",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-01-02T10:15Z", "2026-01-05T10:15Z"],
    ),
    # years, ranges, lists, steps, names
    ("cron(0 0 1 1 ? 2030)", "UTC", "2026-06-01T00:00Z", ["2030-01-01T00:00Z"]),
    ("cron(0 0 1 1 ? 2030)", "UTC", "2030-01-01T00:00Z", []),
    ("cron(0 0 1 1 ? 2026/2)", "UTC", "2026-06-01T00:00Z", ["2028-01-01T00:00Z"]),
    ("cron(0 0 1 1 ? 2027-2029)", "UTC", "2030-01-01T00:00Z", []),
    ("cron(0/15 * * * ? *)", "UTC", "2026-01-01T00:07Z", ["2026-01-01T00:15Z"]),
    (
        "cron(5/20 * * * ? *)",
        "UTC",
        "2026-01-01T00:50Z",
        ["2026-01-01T01:05Z", "2026-01-01T01:25Z"],
    ),
    ("cron(0 9-17/4 * * ? *)", "UTC", "2026-01-01T13:00Z", ["2026-01-01T17:00Z"]),
    ("cron(0 0 29 2 ? *)", "UTC", "2026-03-01T00:00Z", ["2028-02-29T00:00Z"]),
    ("cron(0 0 31 * ? *)", "UTC", "2026-04-01T00:00Z", ["2026-05-31T00:00Z"]),
    ("cron(0 0 1 JAN,JUL ? *)", "UTC", "2026-02-01T00:00Z", ["2026-07-01T00:00Z"]),
    ("cron(0 0 1,15 * ? *)", "UTC", "2026-01-10T00:00Z", ["2026-01-15T00:00Z"]),
    ("cron(0 6 ? * mon *)", "UTC", "2026-01-01T00:00Z", ["2026-01-05T06:00Z"]),
    # at(): in the zone, once; a twice-occurring time is the first one
    ("at(2026-10-25T02:30:00)", "Europe/Berlin", "2026-01-01T00:00Z", ["2026-10-25T02:30+02:00"]),
    ("at(2026-07-01T09:00:00)", "America/New_York", "2026-01-01T00:00Z", ["2026-07-01T13:00Z"]),
    ("at(2026-07-01T09:00:00)", "America/New_York", "2026-07-01T13:00Z", []),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), NEXT_FIRES)
def test_next_fires_match_scheduler(
    expression: str, zone: str, after: str, expected: list[str]
) -> None:
    schedule = build_schedule(expression, zone)
    fires = schedule.next_fires(utc(after), max(len(expected), 2))
    assert fires[: len(expected)] == [utc(t) for t in expected]
    if len(expected) < 2:
        assert len(fires) <= 2
    if not expected:
        assert fires == []


def test_the_table_has_at_least_forty_cases() -> None:
    assert len(NEXT_FIRES) >= 40


@pytest.mark.parametrize(
    ("expression", "anchor", "after", "expected"),
    [
        ("rate(1 hour)", "2026-01-01T00:00Z", "2026-01-01T05:30Z", "2026-01-01T06:00Z"),
        # a day is 24 hours, whatever the zone's clocks do
        ("rate(2 days)", "2026-03-28T06:00Z", "2026-03-28T06:00Z", "2026-03-30T06:00Z"),
        ("rate(15 minutes)", "2026-01-01T00:00Z", "2025-12-31T00:00Z", "2026-01-01T00:00Z"),
        ("rate(1 minute)", "2026-01-01T00:00:30Z", "2026-01-01T00:10Z", "2026-01-01T00:10:30Z"),
    ],
)
def test_rates_run_from_their_start_in_fixed_steps(
    expression: str, anchor: str, after: str, expected: str
) -> None:
    schedule = build_schedule(expression, "Europe/Berlin", start=utc(anchor))
    assert schedule.next_fires(utc(after), 1) == [utc(expected)]


def test_rate_without_start_is_anchored_at_creation() -> None:
    schedule = build_schedule("rate(6 hours)", "UTC")
    created = utc("2026-01-01T01:00Z")
    assert schedule.next_fires(utc("2026-01-01T08:00Z"), 2, created=created) == [
        utc("2026-01-01T13:00Z"),
        utc("2026-01-01T19:00Z"),
    ]


def test_start_and_end_bound_the_fires() -> None:
    schedule = build_schedule(
        "cron(0 6 * * ? *)", "UTC", start=utc("2026-05-10T06:00Z"), end=utc("2026-05-11T00:00Z")
    )
    assert schedule.next_fires(utc("2026-01-01T00:00Z"), 3) == [utc("2026-05-10T06:00Z")]


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("cron(0 6 * * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 6 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 6 * * ?)", "six fields"),
        ("cron(0 6 * * ? * *)", "six fields"),
        ("cron(0  6 * * ? *)", "six fields"),
        ("cron(60 6 * * ? *)", "minutes 60 is out of range 0-59"),
        ("cron(0 24 * * ? *)", "hours 24 is out of range"),
        ("cron(0 6 ? * 0 *)", "day-of-week 0 is out of range 1-7"),
        ("cron(0 6 ? * 8 *)", "day-of-week 8 is out of range"),
        ("cron(0 6 ? * MON/2 *)", "day-of-week takes no '/' step"),
        ("cron(0 6 ? * 2#6 *)", "out of range 1-5"),
        ("cron(0 6 32 * ? *)", "day-of-month 32 is out of range"),
        ("cron(0 6 1 13 ? *)", "month 13 is out of range"),
        ("cron(0 6 1 * ? 1969)", "year 1969 is out of range"),
        ("cron(0 6 1 * ? 2200)", "year 2200 is out of range"),
        ("cron(0 6 1 FOO ? *)", "'FOO' is not a month value"),
        ("cron(0 17-9 * * ? *)", "goes backwards"),
        ("cron(*/0 * * * ? *)", "out of range"),
        ("rate(1 hours)", "rate(1 hour)"),
        ("rate(2 hour)", "rate(2 hours)"),
        ("rate(0 minutes)", "positive"),
        ("rate(5 seconds)", "minute(s), hour(s) or day(s)"),
        ("rate(1 week)", "minute(s), hour(s) or day(s)"),
        ("rate(-1 minutes)", "rate(value unit)"),
        ("rate(5minutes)", "rate(value unit)"),
        ("at(2026-02-30T00:00:00)", "not a valid date"),
        ("at(2026-01-01 00:00:00)", "at(yyyy-mm-ddThh:mm:ss)"),
        ("at(2026-01-01T00:00)", "at(yyyy-mm-ddThh:mm:ss)"),
        ("every monday", "must be cron("),
        ("", "is empty"),
        (" cron(0 6 ? * MON *)", "spaces around it"),
    ],
)
def test_what_scheduler_refuses_is_refused_with_a_reason(expression: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_expression(expression)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("name", ["Mars/Olympus", "Europe/Berlin ", "../etc/passwd", "", "Europe"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(ScheduleError, match="unknown time zone"):
        zone_of(name)


def test_an_at_time_clocks_skip_is_refused() -> None:
    with pytest.raises(ScheduleError, match="clocks jump forward"):
        build_schedule("at(2026-03-29T02:30:00)", "Europe/Berlin")


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ScheduleError, match="end must be after start"):
        build_schedule(
            "rate(1 day)", "UTC", start=utc("2026-02-01T00:00Z"), end=utc("2026-01-01T00:00Z")
        )


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("rate(30 minutes)", 30),
        ("rate(1 day)", 1440),
        ("cron(0/15 * * * ? *)", 15),
        ("cron(0 0,23 * * ? *)", 60),  # 23:00, then 00:00 the next day
        ("cron(0 0,23 ? * MON *)", 23 * 60),
        ("cron(0 6 ? * MON *)", 7 * 1440),
        ("cron(0 9 ? * MON-FRI *)", 1440),
        ("cron(0 12 L * ? *)", 28 * 1440),  # 31 Jan -> 28 Feb (2027)... at least a month
    ],
)
def test_shortest_interval(expression: str, minutes: int) -> None:
    gap = shortest_interval(parse_expression(expression), date(2026, 1, 1))
    assert gap is not None
    if expression.startswith("cron(0 12 L"):
        assert gap >= timedelta(days=28)
    else:
        assert gap == timedelta(minutes=minutes)


def test_a_one_off_has_no_interval() -> None:
    assert shortest_interval(parse_expression("at(2026-01-01T00:00:00)"), date(2026, 1, 1)) is None
    assert shortest_interval(parse_expression("cron(0 0 1 1 ? 2030)"), date(2026, 1, 1)) is None
