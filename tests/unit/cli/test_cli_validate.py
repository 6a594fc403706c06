"""`crq validate`: every error with file, field path and reason; exit 1 on any error."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crq_local.cli.app import app

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_SPECS = ROOT / "examples" / "specs"
GOOD = sorted(
    path for path in EXAMPLE_SPECS.glob("*.yaml") if path.name != "weekly-report-draft.yaml"
)
REJECTED = EXAMPLE_SPECS / "weekly-report-draft.yaml"

runner = CliRunner()


def test_good_specs_pass_with_one_ok_line_each() -> None:
    result = runner.invoke(app, ["validate", *map(str, GOOD)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(GOOD) >= 4
    for path, line in zip(GOOD, lines, strict=True):
        assert str(path) in line and "OK" in line


def test_every_error_is_listed_with_file_field_and_reason() -> None:
    result = runner.invoke(app, ["validate", str(REJECTED)])

    assert result.exit_code == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert len(errors) == 3
    assert all(str(REJECTED) in line for line in errors)
    by_field = {line.split(": ")[1]: line.split(": ", 2)[2] for line in errors}
    assert by_field["maxRuntimeMinutes"] == "must be at least 1"
    assert "CSV, PARQUET" in by_field["resultConfiguration.outputConfiguration.s3.resultFormat"]
    assert "run_day" in by_field["sqlParameters.queryString"]
    assert "1 of 1 file invalid" in result.stdout


def test_one_bad_file_among_good_ones_fails_the_run(tmp_path: Path) -> None:
    unknown_key = tmp_path / "typo.yaml"
    unknown_key.write_text(GOOD[0].read_text() + "\nevery: weekly\n")

    result = runner.invoke(app, ["validate", str(GOOD[0]), str(unknown_key)])

    assert result.exit_code == 1
    assert f"{GOOD[0]}: OK" in result.stdout
    assert f"{unknown_key}: every: unknown field" in result.stdout


def test_a_missing_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    result = runner.invoke(app, ["validate", str(GOOD[0]), str(missing)])

    assert result.exit_code == 1
    assert f"{missing}: no such file" in result.stdout
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_directory_is_refused_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path)])

    assert result.exit_code == 1
    assert "is a directory" in result.stdout


def test_a_problem_of_the_whole_file_reads_as_the_file_not_an_empty_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_bytes(b"")
    complex_key = tmp_path / "complex-key.yaml"
    complex_key.write_bytes(b"? [a]\n: 1\n")

    result = runner.invoke(app, ["validate", str(empty), str(complex_key)])

    lines = result.stdout.splitlines()
    assert f"✗ {empty}: the file is empty" in lines
    assert f"✗ {complex_key}: the file: keys must be strings, not a list (line 1, column 3)" in (
        lines
    )
    assert "<root>" not in result.stdout and ": :" not in result.stdout


def test_validate_and_the_start_path_word_the_size_error_alike(tmp_path: Path) -> None:
    from crq.spec.safe_load import MAX_SPEC_BYTES, too_large

    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_SPEC_BYTES + b"\n")

    result = runner.invoke(app, ["validate", str(big)])

    assert f"✗ {big}: {too_large(big.stat().st_size)}" in result.stdout.splitlines()
