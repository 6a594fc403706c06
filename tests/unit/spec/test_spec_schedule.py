"""`schedule:` and `timezone:` in spec files: checked at load, and placeholders in the zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crq.schedule import zone_of
from crq.spec import SpecInvalid, load_spec, render_request
from crq.spec.render import RenderContext, render_value

GOOD = Path(__file__).parents[2] / "good_specs" / "weekly-overlap.yaml"
SOURCE = "s3://crq-specs/specs/weekly-overlap.yaml"


def spec_with(extra: str, **kwargs: int):  # type: ignore[no-untyped-def]
    return load_spec(GOOD.read_bytes() + extra.encode(), SOURCE, **kwargs)


def errors_of(extra: str, **kwargs: int) -> list[tuple[str, str]]:
    with pytest.raises(SpecInvalid) as caught:
        spec_with(extra, **kwargs)
    assert caught.value.source == SOURCE
    return [(error.field, error.message) for error in caught.value.errors]


def test_a_spec_without_schedule_is_unscheduled_and_utc() -> None:
    spec = spec_with("")
    assert spec.schedule is None
    assert spec.timezone == "UTC"


def test_the_string_shorthand() -> None:
    spec = spec_with("schedule: cron(0 6 ? * MON *)\ntimezone: Europe/Berlin\n")
    assert spec.schedule is not None
    assert spec.schedule.expression == "cron(0 6 ? * MON *)"
    assert spec.schedule.run_on_upload is False
    assert spec.schedule.flexible_window_minutes is None
    assert spec.timezone == "Europe/Berlin"


def test_the_mapping_with_its_options() -> None:
    spec = spec_with(
        "timezone: America/New_York\n"
        "schedule:\n"
        "  expression: rate(1 day)\n"
        "  start: '2027-01-04T06:00:00'\n"
        "  end: '2027-06-30T00:00:00Z'\n"
        "  flexibleWindowMinutes: 15\n"
        "  runOnUpload: true\n"
    )
    assert spec.schedule is not None
    # a start without an offset is in the spec's zone (EST: UTC-5)
    assert spec.schedule.start == datetime(2027, 1, 4, 11, 0, tzinfo=UTC)
    assert spec.schedule.end == datetime(2027, 6, 30, tzinfo=UTC)
    assert spec.schedule.flexible_window_minutes == 15
    assert spec.schedule.run_on_upload is True


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("schedule: cron(0 6 * * MON *)\n", ("schedule", "exactly one of day-of-month")),
        ("schedule: {expression: 'rate(1 days)'}\n", ("schedule.expression", "rate(1 day)")),
        ("schedule: weekly\n", ("schedule", "must be cron(")),
        ("schedule: 5\n", ("schedule", "must be an expression such as")),
        ("schedule: {runOnUpload: true}\n", ("schedule.expression", "is required")),
        ("schedule: {expression: 'rate(1 day)', every: 2}\n", ("schedule.every", "unknown field")),
        (
            "schedule: {expression: 'rate(1 day)', flexibleWindowMinutes: 0}\n",
            ("schedule.flexibleWindowMinutes", "must be at least 1"),
        ),
        (
            "schedule: {expression: 'rate(1 day)', start: 'monday'}\n",
            ("schedule.start", "ISO 8601"),
        ),
        (
            "schedule: {expression: 'rate(1 day)', start: '2027-02-01T00:00:00', "
            "end: '2027-01-01T00:00:00'}\n",
            ("schedule.end", "end must be after start"),
        ),
        ("schedule: rate(1 day)\ntimezone: Mars/Olympus\n", ("timezone", "unknown time zone")),
        ("timezone: 'Europe/Berlin '\n", ("timezone", "unknown time zone")),
        (
            "schedule: at(2026-03-29T02:30:00)\ntimezone: Europe/Berlin\n",
            ("schedule", "clocks jump forward"),
        ),
        (
            "schedule: rate(5 minutes)\n",
            (
                "schedule",
                "fires every 5 minute(s) at its most frequent; this stack allows at "
                "most one run every 2 hour(s) (MinScheduleIntervalMinutes)",
            ),
        ),
        (
            "schedule: cron(0 0,23 * * ? *)\n",
            ("schedule", "fires every 1 hour(s)"),
        ),
    ],
)
def test_schedule_mistakes_are_field_errors(extra: str, expected: tuple[str, str]) -> None:
    field, fragment = expected
    found = errors_of(extra, min_schedule_interval_minutes=120)
    assert any(f == field and fragment in m for f, m in found), found


def test_the_interval_limit_is_the_stacks() -> None:
    assert spec_with("schedule: rate(5 minutes)\n", min_schedule_interval_minutes=5).schedule
    assert spec_with("schedule: rate(1 minute)\n", min_schedule_interval_minutes=0).schedule
    with pytest.raises(SpecInvalid):
        spec_with("schedule: rate(59 minutes)\n")  # the default, 60


def test_a_one_off_is_never_too_frequent() -> None:
    spec = spec_with("schedule: at(2027-01-01T00:00:00)\n", min_schedule_interval_minutes=10_000)
    assert spec.schedule is not None


# ---- placeholders in the spec's zone --------------------------------------------------------


def render_at(extra: str, when: datetime) -> dict[str, str]:
    spec = spec_with(extra)
    request = render_request(spec, spec.render_context(when, "schedule"))
    return {
        **request["sqlParameters"]["parameters"],
        "keyPrefix": request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"],
    }


def test_without_timezone_placeholders_render_in_utc_as_before() -> None:
    # 00:30 in Berlin on Monday 2026-03-30 is still Sunday in UTC
    rendered = render_at("", datetime(2026, 3, 29, 22, 30, tzinfo=UTC))
    assert rendered == {
        "start_date": "2026-03-22",
        "end_date": "2026-03-28",
        "keyPrefix": "weekly-overlap/2026/03/29",
    }


def test_with_timezone_the_run_date_is_the_local_date() -> None:
    rendered = render_at("timezone: Europe/Berlin\n", datetime(2026, 3, 29, 22, 30, tzinfo=UTC))
    assert rendered == {
        "start_date": "2026-03-23",
        "end_date": "2026-03-29",
        "keyPrefix": "weekly-overlap/2026/03/30",
    }


def berlin(run_time: datetime) -> RenderContext:
    return RenderContext(run_time, "x", "schedule", zone_of("Europe/Berlin"))


def test_run_time_carries_the_local_offset_across_a_dst_change() -> None:
    before = berlin(datetime(2026, 3, 28, 5, 0, tzinfo=UTC))  # 06:00 CET
    after = berlin(datetime(2026, 3, 29, 4, 0, tzinfo=UTC))  # 06:00 CEST
    assert render_value("{{ run_time }}", before) == "2026-03-28T06:00:00+01:00"
    assert render_value("{{ run_time }}", after) == "2026-03-29T06:00:00+02:00"
    assert render_value("{{ run_time | %H:%M }}", after) == "06:00"


def test_days_move_the_calendar_and_hours_the_clock() -> None:
    # 06:00 CEST on the change day: a day earlier is 06:00 CET; 24 hours earlier is 05:00 CET
    context = berlin(datetime(2026, 3, 29, 4, 0, tzinfo=UTC))
    assert render_value("{{ run_time - 1d }}", context) == "2026-03-28T06:00:00+01:00"
    assert render_value("{{ run_time - 24h }}", context) == "2026-03-28T05:00:00+01:00"


def test_utc_rendering_is_unchanged() -> None:
    context = RenderContext(datetime(2026, 3, 29, 4, 0, tzinfo=UTC), "x", "schedule")
    assert render_value("{{ run_time }}", context) == "2026-03-29T04:00:00Z"
    assert render_value("{{ run_time - 1d }}", context) == "2026-03-28T04:00:00Z"
