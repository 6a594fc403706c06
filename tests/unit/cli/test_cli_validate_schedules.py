"""`crq validate` on scheduled specs: the schedule and its next run, or the schedule's errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crq_local.cli.app import app

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def test_a_scheduled_spec_shows_its_schedule_and_next_run() -> None:
    spec = ROOT / "examples" / "specs" / "weekly-channel-mix.yaml"

    result = runner.invoke(app, ["validate", str(spec)], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "schedule cron(0 6 ? * MON *) Europe/Berlin, next " in result.stdout
    assert " 06:00 CE" in result.stdout  # Monday 06:00, CET or CEST


def test_a_bad_schedule_is_a_field_error(tmp_path: Path) -> None:
    spec = ROOT / "examples" / "specs" / "weekly-channel-mix.yaml"
    bad = tmp_path / "hourly.yaml"
    bad.write_text(spec.read_text().replace("cron(0 6 ? * MON *)", "cron(0 6 * * MON *)"))

    result = runner.invoke(app, ["validate", str(bad)], env={"COLUMNS": "300"})

    assert result.exit_code == 1
    assert f"{bad}: schedule: cron(...): exactly one of day-of-month and day-of-week" in (
        result.stdout.replace("\n", "")
    )
