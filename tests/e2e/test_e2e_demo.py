"""`crq demo`, the command `make demo` runs: exit 0 and a summary of every example spec."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from e2e_support import CRQ, EXAMPLE_SPECS, crq_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-demo")]


def run_demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`crq demo ARGS` as a user runs it, in its own process."""
    return subprocess.run(
        [CRQ, "demo", *args], cwd=cwd, env=crq_env(), capture_output=True, text=True, timeout=180
    )


def own_examples(tmp_path: Path, collaboration: str) -> Path:
    """A folder of one's own for `--examples`: this collaboration file (its data paths pointing
    at the example data) and an empty specs/ for the test's specs and demo.toml."""
    examples = tmp_path / "examples"
    (examples / "specs").mkdir(parents=True)
    data = EXAMPLE_SPECS.parent / "data"
    (examples / "collaboration.yaml").write_text(collaboration.replace("data/", f"{data}/"))
    return examples


def test_the_demo_runs_every_example_to_its_expected_end(tmp_path: Path) -> None:
    manifest = tomllib.loads((EXAMPLE_SPECS / "demo.toml").read_text())["spec"]

    demo = run_demo(tmp_path)

    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Every spec ended as expected." in demo.stdout
    assert "Traceback" not in demo.stderr
    summary = demo.stdout[demo.stdout.index("crq demo: how each run ended") :]
    for entry in manifest:
        name = entry["file"].removesuffix(".yaml")
        row = next(line for line in summary.splitlines() if name in line)
        assert entry["expect"] in row
        # A scheduled spec ran when its schedule fired, not at upload.
        assert ("│ at " in row) == ("fire_in_seconds" in entry), row
    assert any("fire_in_seconds" in entry for entry in manifest)
    assert "SCHEDULE_SET     weekly-channel-mix" in demo.stdout
    assert "first 4 of 4 rows" in demo.stdout  # a preview of a result
    assert "Sandbox stopped (exit code 0)" in demo.stdout


def test_the_demo_fails_with_the_reason_when_an_outcome_is_not_the_expected_one(
    tmp_path: Path,
) -> None:
    # Given a folder of one's own: the example world, a spec that fails and one that never ends
    examples = own_examples(tmp_path, (EXAMPLE_SPECS.parent / "collaboration.yaml").read_text())
    failing = (EXAMPLE_SPECS / "revenue-by-store.yaml").read_text()
    (examples / "specs" / "fails.yaml").write_text(failing)
    held = (EXAMPLE_SPECS / "channel-mix.yaml").read_text()
    held = held.replace("SELECT channel,", "-- crq-fault: hold\n    SELECT channel,")
    (examples / "specs" / "held.yaml").write_text(held)
    (examples / "specs" / "demo.toml").write_text(
        '[[spec]]\nfile = "fails.yaml"\nexpect = "QUERY_SUCCEEDED"\n\n'
        '[[spec]]\nfile = "held.yaml"\nexpect = "QUERY_SUCCEEDED"\ntimeout_seconds = 5\n'
    )

    # When the demo runs them
    demo = run_demo(tmp_path, "--examples", str(examples), "--pace", "fast")

    # Then it exits 1 and says which outcome was wrong and which never came
    assert demo.returncode == 1, demo.stdout + demo.stderr
    assert "fails.yaml: expected QUERY_SUCCEEDED, got QUERY_FAILED" in demo.stderr
    assert "held.yaml: expected QUERY_SUCCEEDED, got no notification within 5 s" in demo.stderr
    assert "Sandbox stopped (exit code 0)" in demo.stdout
    assert "Traceback" not in demo.stderr


def test_the_demo_runs_in_another_region(tmp_path: Path) -> None:
    # Given the example world in eu-central-1 (buckets there need a location constraint)
    collaboration = (EXAMPLE_SPECS.parent / "collaboration.yaml").read_text()
    assert "region: us-east-1" in collaboration
    examples = own_examples(
        tmp_path, collaboration.replace("region: us-east-1", "region: eu-central-1")
    )
    for name in ("channel-mix.yaml", "weekly-report-draft.yaml"):
        (examples / "specs" / name).write_text((EXAMPLE_SPECS / name).read_text())
    (examples / "specs" / "demo.toml").write_text(
        '[[spec]]\nfile = "channel-mix.yaml"\nexpect = "QUERY_SUCCEEDED"\n\n'
        '[[spec]]\nfile = "weekly-report-draft.yaml"\nexpect = "SPEC_REJECTED"\n'
    )

    # When the demo runs there
    demo = run_demo(tmp_path, "--examples", str(examples), "--pace", "fast")

    # Then every spec ends as expected, results included
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Every spec ended as expected." in demo.stdout
    assert "Traceback" not in demo.stderr
