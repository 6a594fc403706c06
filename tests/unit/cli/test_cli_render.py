"""`crq render`: the exact StartProtectedQuery request, sensitive values hidden by default."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crq_local.cli.app import app

ROOT = Path(__file__).resolve().parents[3]
OVERLAP = ROOT / "examples" / "specs" / "audience-overlap.yaml"
CHANNELS = ROOT / "examples" / "specs" / "channel-mix.yaml"

runner = CliRunner()


def render(*args: str) -> tuple[int, dict | None, str]:
    result = runner.invoke(app, ["render", *args])
    try:
        body = json.loads(result.stdout)
    except ValueError:
        body = None
    return result.exit_code, body, result.stderr


def test_placeholders_render_from_the_given_time() -> None:
    code, request, _ = render(str(CHANNELS), "--at", "2026-03-30T06:00:00Z")

    assert code == 0
    s3 = request["resultConfiguration"]["outputConfiguration"]["s3"]
    assert s3["keyPrefix"] == "channel-mix/2026-03-30"
    assert request["type"] == "SQL"
    assert "FROM impressions" in request["sqlParameters"]["queryString"]


def test_parameter_values_are_redacted_unless_asked() -> None:
    code, request, _ = render(str(OVERLAP), "--at", "2026-03-30T06:00:00Z")

    assert code == 0
    assert request["sqlParameters"]["parameters"] == {"start_date": "***", "end_date": "***"}
    prefix = request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"]
    assert prefix == "audience-overlap/2026/03/30"


def test_show_sensitive_shows_the_rendered_dates() -> None:
    # 104 weeks before Monday 2026-03-30 is Monday 2024-04-01.
    code, request, _ = render(str(OVERLAP), "--at", "2026-03-30T06:00:00Z", "--show-sensitive")

    assert code == 0
    assert request["sqlParameters"]["parameters"] == {
        "start_date": "2024-04-01",
        "end_date": "2026-03-30",
    }


def test_a_time_without_offset_is_utc_and_a_date_is_midnight() -> None:
    _, at_date, _ = render(str(CHANNELS), "--at", "2026-01-05")
    _, at_offset, _ = render(str(CHANNELS), "--at", "2026-01-05T23:30:00-02:00")

    assert at_date["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"].endswith(
        "2026-01-05"
    )
    # 23:30 at UTC-2 is the next day in UTC, where run times live.
    assert at_offset["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"].endswith(
        "2026-01-06"
    )


def test_a_bad_time_is_a_usage_error() -> None:
    result = runner.invoke(app, ["render", str(CHANNELS), "--at", "last tuesday"])

    assert result.exit_code == 2
    assert "not an ISO 8601 time" in result.output
    assert "Traceback" not in result.output


def test_an_invalid_spec_prints_its_errors_and_exits_1() -> None:
    code, body, stderr = render(str(ROOT / "examples" / "specs" / "weekly-report-draft.yaml"))

    assert code == 1
    assert body is None
    assert "resultFormat: must be one of CSV, PARQUET" in stderr


def test_a_missing_file_exits_2_with_a_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", str(tmp_path / "gone.yaml")])

    assert result.exit_code == 2
    assert "gone.yaml: no such file" in result.stderr
    assert "Traceback" not in result.output
