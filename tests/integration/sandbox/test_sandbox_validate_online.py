"""`crq validate --online` against the sandbox: the preflight corpus is reported file by file,
field by field, with the stack's side read from the sandbox's exports (as a user pastes them).

The sandbox runs in-process with the corpus collaboration and the corpus stack's parameters;
`crq` runs as its own process, as a user runs it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from crq_local.engine.timings import Timings
from crq_local.sandbox import Sandbox, SandboxOptions

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "preflight_specs"
EXPECTED: dict[str, Any] = yaml.safe_load((CORPUS / "expected.yaml").read_text())
CRQ = str(Path(sys.executable).with_name("crq"))
MEMBERSHIP = "a0000000-0000-4000-8000-000000000001"
TEMPLATE_ARN = (
    f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}"
    "/analysistemplate/a1000000-0000-4000-8000-000000000001"
)
GOOD_SPEC = f"""\
name: fits
membershipIdentifier: {MEMBERSHIP}
sqlParameters:
  analysisTemplateArn: {TEMPLATE_ARN}
  parameters: {{end_date: "{{{{ run_date }}}}", min_count: "5", since: "2026-01-01T06:00:00Z"}}
resultConfiguration:
  outputConfiguration:
    s3: {{resultFormat: CSV, bucket: crq-results, keyPrefix: fits/}}
"""

pytestmark = pytest.mark.xdist_group("sandbox-in-process")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    options = SandboxOptions(
        collaboration=CORPUS / "collaboration.yaml",
        port=0,
        engine_port=0,
        tick_seconds=0.5,
        timings=Timings.fast(),
        log_file=tmp_path_factory.mktemp("sandbox") / "handlers.log",
        results_bucket="crq-results",
        template_parameters=dict(EXPECTED["stack"]),
    )
    sandbox = Sandbox(options, Console(file=io.StringIO(), width=200))
    try:
        yield dict(sandbox.start())
    finally:
        sandbox.stop()


def crq(*args: str, exports: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRQ_"))}
    env |= {"COLUMNS": "300", **exports}
    return subprocess.run(
        [CRQ, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_the_sandbox_exports_what_preflight_checks_against(exports: dict[str, str]) -> None:
    assert exports["CRQ_RESULT_BUCKET_NAMES"] == "crq-results"
    assert exports["CRQ_MEMBERSHIP_IDS"].split(",") == EXPECTED["stack"]["MembershipIds"]
    assert exports["CRQ_MAX_WORKER_TYPE"] == "CR.4X"


def test_every_corpus_spec_is_reported_with_its_fields(exports: dict[str, str]) -> None:
    paths = [str(CORPUS / name) for name in sorted(EXPECTED["specs"])]

    done = crq("validate", "--online", *paths, exports=exports)

    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    for name, expected in EXPECTED["specs"].items():
        path = str(CORPUS / name)
        reported = [line for line in lines if line.startswith(f"✗ {path}: ")]
        assert len(reported) == len(expected["errors"]), (name, reported)
        for field, fragment in expected["errors"]:
            assert any(
                line.startswith(f"✗ {path}: {field}: ") and fragment in line for line in reported
            ), (name, field, fragment, reported)
    assert f"{len(paths)} of {len(paths)} files invalid" in done.stdout


def test_a_spec_that_fits_is_ok_online_and_offline_validate_is_unchanged(
    exports: dict[str, str], tmp_path: Path
) -> None:
    good = tmp_path / "fits.yaml"
    good.write_text(GOOD_SPEC)
    wrong = CORPUS / "bucket-not-in-stack.yaml"

    online = crq("validate", "--online", str(good), exports=exports)
    offline = crq("validate", str(good), str(wrong), exports={})

    assert online.returncode == 0, online.stdout + online.stderr
    assert f"✓ {good}: OK online (spec fits)" in online.stdout
    assert offline.returncode == 0, offline.stdout  # offline cannot know the stack's buckets
    assert "OK online" not in offline.stdout


def test_online_without_the_sandbox_exports_says_what_to_do(tmp_path: Path) -> None:
    good = tmp_path / "fits.yaml"
    good.write_text(GOOD_SPEC)

    done = crq("validate", "--online", str(good), exports={})

    assert done.returncode == 2
    assert "CRQ_MEMBERSHIP_IDS is not set" in done.stderr
    assert "Traceback" not in done.stderr
