"""The placeholder grammar: what each placeholder renders to, and every way one can be wrong."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from crq.spec.render import (
    DIRECTIVES,
    RenderContext,
    TemplateError,
    has_placeholder_syntax,
    parse_template,
    render_value,
)

# A Monday, early in the year: ISO week 2, day 5 of the year.
CONTEXT = RenderContext(datetime(2026, 1, 5, 6, 15, 9, tzinfo=UTC), "weekly-overlap", "schedule")


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{{ run_date }}", "2026-01-05"),
        ("{{ run_time }}", "2026-01-05T06:15:09Z"),
        ("{{ spec_name }}", "weekly-overlap"),
        ("{{ trigger }}", "schedule"),
        ("{{run_date}}", "2026-01-05"),
        ("{{   run_date   -   7d   }}", "2025-12-29"),
        ("{{ run_date - 7d }}", "2025-12-29"),
        ("{{ run_date + 1w }}", "2026-01-12"),
        ("{{ run_date - 1w + 2d }}", "2025-12-31"),
        ("{{ run_date - 0d }}", "2026-01-05"),
        ("{{ run_time - 7h }}", "2026-01-04T23:15:09Z"),
        ("{{ run_time + 45m }}", "2026-01-05T07:00:09Z"),
        ("{{ run_time - 1d | %Y/%m/%d }}", "2026/01/04"),
        ("{{ run_time | %Y-%m-%dT%H:%M:%S }}", "2026-01-05T06:15:09"),
        ("{{ run_date | dt=%Y%m%d }}", "dt=20260105"),
        ("{{ run_date | %y %j %G-W%V-%u }}", "26 005 2026-W02-1"),
        ("{{ run_date | %a %A %b %B }}", "Mon Monday Jan January"),
        ("{{ run_date | 100%% }}", "100%"),
        ("daily/{{ run_date }}/{{ spec_name }}/", "daily/2026-01-05/weekly-overlap/"),
        ("{{ '{{' }} not a placeholder {{ '}}' }}", "{{ not a placeholder }}"),
        ("{{ '' }}", ""),
        ("no placeholders at all", "no placeholders at all"),
        ("{ single braces } stay", "{ single braces } stay"),
        ("line 1\n{{ run_date }}\nline 3", "line 1\n2026-01-05\nline 3"),
    ],
)
def test_placeholders_render(template: str, rendered: str) -> None:
    assert render_value(template, CONTEXT) == rendered


def test_iso_week_directives_follow_iso_8601_at_a_year_boundary() -> None:
    friday = RenderContext(datetime(2027, 1, 1, tzinfo=UTC), "s", "s3")
    assert render_value("{{ run_date | %Y %G-W%V-%u %j }}", friday) == "2027 2026-W53-5 001"


def test_the_run_time_is_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    context = RenderContext(datetime(2026, 1, 5, 0, 30, tzinfo=paris), "s", "s3")
    assert render_value("{{ run_date }} {{ run_time | %H:%M }}", context) == "2026-01-04 23:30"


def test_a_naive_run_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RenderContext(datetime(2026, 1, 5), "s", "s3")


def test_every_documented_directive_renders() -> None:
    for directive in DIRECTIVES:
        rendered = render_value("{{ run_time | %" + directive + " }}", CONTEXT)
        assert rendered and "%" not in rendered.replace("%", "", 1 if directive == "%" else 0)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ today }}", "unknown variable; use one of run_time, run_date, spec_name, trigger"),
        ("{{ RUN_DATE }}", "unknown variable"),
        ("{{ }}", "the placeholder is empty"),
        ("{{ run_date", "'{{' is not closed by '}}' on the same line"),
        ("{{ run_date }", "'{{' is not closed by '}}'"),
        ("run_date }}", "'}}' without an opening '{{'"),
        ("{{ run_date {{ }}", "'{{' inside a placeholder"),
        ("{{ run_date 7d }}", "expected '+' or '-' and an amount such as 7d"),
        ("{{ run_date - }}", "'-' must be followed by an amount and a unit"),
        ("{{ run_date - d }}", "'-' must be followed by an amount and a unit"),
        ("{{ run_date - 7 }}", "an amount needs a unit"),
        ("{{ run_date - 7y }}", "unknown unit"),
        ("{{ run_date - 7days }}", "unknown unit"),
        ("{{ run_date * 2d }}", "unexpected character"),
        ("{{ run_date - 100000d }}", "an amount is at most 99999"),
        ("{{ run_date + 3h }}", "run_date is a date: offsets are in w or d"),
        ("{{ run_date + 30m }}", "run_date is a date"),
        ("{{ spec_name + 1d }}", "spec_name is text: offsets apply to run_time and run_date only"),
        ("{{ trigger | %Y }}", "trigger is text: a '|' format applies to run_time and run_date"),
        ("{{ run_date | %H }}", "run_date has no time of day: %H needs run_time"),
        ("{{ run_time | %Q }}", "unsupported format directive %Q"),
        ("{{ run_time | %s }}", "unsupported format directive %s"),
        ("{{ run_time | %c }}", "unsupported format directive %c"),
        ("{{ run_time | %Y% }}", "the format ends with a lone %"),
        ("{{ run_time | }}", "the format after '|' is empty"),
        ("{{ run_time | %Y | %m }}", "a format cannot contain braces, '|'"),
        ("{{ run_time | {%Y} }}", "a format cannot contain braces"),
        ("{{ 'abc' | %Y }}", "a quoted literal takes no offset and no format"),
        ("{{ 'abc' + 1d }}", "a quoted literal takes no offset and no format"),
        ("{{ 'abc }}", "'{{' is not closed by '}}'"),
        ("{{ 7d }}", "a placeholder starts with a variable"),
        ("{{ run_date.__class__ }}", "unexpected character"),
        ("{{ __import__('os') }}", "unexpected character"),
        ("{{ run_date - 1d; }}", "unexpected character"),
    ],
)
def test_bad_placeholders_are_refused(template: str, problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(template)
    assert len(caught.value.issues) == 1
    assert problem in caught.value.issues[0].problem


def test_every_bad_placeholder_in_a_value_is_reported_with_its_position() -> None:
    value = "SELECT *\nFROM t\nWHERE a = '{{ today }}' AND b = '{{ run_date + 1h }}'\n{{ x"
    with pytest.raises(TemplateError) as caught:
        parse_template(value)
    messages = [issue.describe(value, sensitive=False) for issue in caught.value.issues]
    assert messages == [
        "placeholder {{ today }} at line 3, column 12: unknown variable; use one of run_time, "
        "run_date, spec_name, trigger",
        "placeholder {{ run_date + 1h }} at line 3, column 34: run_date is a date: offsets are "
        "in w or d (use run_time for h and m)",
        "placeholder {{ x at line 4, column 1: '{{' is not closed by '}}' on the same line "
        "(write {{ '{{' }} for a literal '{{')",
    ]


def test_a_placeholder_cannot_span_lines() -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template("{{ run_date\n}}")
    assert [issue.problem[:24] for issue in caught.value.issues] == [
        "'{{' is not closed by '}",
        "'}}' without an opening ",
    ]


def test_a_sensitive_value_is_never_echoed_in_a_message() -> None:
    value = "prefix-s3cr3t {{ s3cr3t }}"
    with pytest.raises(TemplateError) as caught:
        parse_template(value)
    (issue,) = caught.value.issues
    assert issue.describe(value, sensitive=True) == (
        "placeholder at character 15: unknown variable; use one of run_time, run_date, "
        "spec_name, trigger"
    )
    assert "s3cr3t" in issue.describe(value, sensitive=False)


def test_an_offset_beyond_the_calendar_fails_at_render_time_not_with_a_crash() -> None:
    template = parse_template("{{ run_date - 99999w }}")
    early = RenderContext(datetime(1900, 1, 1, tzinfo=UTC), "s", "s3")
    with pytest.raises(TemplateError, match="the offset leaves the calendar"):
        template.render(early)
    assert template.render(CONTEXT) == (date(2026, 1, 5) - timedelta(weeks=99999)).isoformat()


def test_a_template_knows_its_variables() -> None:
    template = parse_template("{{ run_date }}-{{ run_time | %H }}-{{ run_date - 1d }}-{{ '}}' }}")
    assert template.has_placeholders
    assert template.variables == {"run_date", "run_time"}
    assert not parse_template("plain").has_placeholders


def test_placeholder_syntax_detection() -> None:
    assert has_placeholder_syntax("a {{ b }}")
    assert has_placeholder_syntax("stray }}")
    assert not has_placeholder_syntax("{ json: 1 }")


def test_a_large_value_with_many_placeholders_renders() -> None:
    value = "x{{ run_date - 1d | %Y%m%d }}" * 20_000
    assert render_value(value, CONTEXT) == "x20260104" * 20_000


def test_the_examples_in_the_spec_documentation_are_true() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "spec.md").read_text()
    match = re.search(r"```\n(\{\{ run_date \}\}.*?)```", doc, re.DOTALL)
    assert match, "docs/spec.md lost its placeholder examples"
    at = RenderContext(datetime(2026, 1, 5, 6, 15, tzinfo=UTC), "weekly-overlap", "schedule")
    lines = match.group(1).strip().splitlines()
    assert len(lines) >= 10
    for line in lines:
        template, shown = re.split(r"\s{3,}", line.strip())[:2]
        assert render_value(template, at) == shown.split()[0], line
