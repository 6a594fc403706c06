"""The sandbox in any region, and never touching the user's own AWS configuration.

In-process, with recorders for handlers (as test_sandbox_wiring.py); the real handlers run in
another region in tests/e2e/test_e2e_demo.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import pytest
from rich.console import Console

from crq_local.engine.timings import Timings
from crq_local.sandbox import Sandbox, SandboxOptions

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.xdist_group("sandbox-in-process")


def collaboration_in(region: str, folder: Path) -> Path:
    text = (EXAMPLES / "collaboration.yaml").read_text()
    assert "region: us-east-1" in text
    path = folder / "collaboration.yaml"
    path.write_text(
        text.replace("region: us-east-1", f"region: {region}").replace(
            "data/", f"{EXAMPLES / 'data'}/"
        )
    )
    return path


def recorder(path: str):  # type: ignore[no-untyped-def]
    return lambda event, context: {"ok": "yes"}


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1"])
def test_the_sandbox_runs_in_any_region_without_touching_aws_config(
    region: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a user's home with an AWS config of their own, and a collaboration in `region`
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    user_config = home / ".aws" / "config"
    user_config.write_text("[default]\nregion = ap-south-1\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("AWS_CONFIG_FILE", raising=False)
    output = io.StringIO()
    sandbox = Sandbox(
        SandboxOptions(
            collaboration=collaboration_in(region, tmp_path),
            port=0,
            engine_port=0,
            tick_seconds=60,
            timings=Timings.fast(),
            log_file=tmp_path / "handlers.log",
        ),
        Console(file=output, width=200),
        resolve_handler=recorder,
    )

    # When it starts
    exports = sandbox.start()
    try:
        s3 = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        ).client("s3", endpoint_url=exports["AWS_ENDPOINT_URL"])
        buckets = [exports["CRQ_SPECS_BUCKET"], exports["CRQ_RESULTS_BUCKET"]]
        locations = [s3.get_bucket_location(Bucket=b)["LocationConstraint"] for b in buckets]
        config_file = Path(exports["AWS_CONFIG_FILE"])
        config_text = config_file.read_text()
        banner = sandbox.banner()
        cleanrooms = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        ).client("cleanrooms", endpoint_url=exports["AWS_ENDPOINT_URL_CLEANROOMS"])
        template_arns = [
            t["arn"]
            for t in cleanrooms.list_analysis_templates(
                membershipIdentifier=exports["CRQ_MEMBERSHIP_ID"]
            )["analysisTemplateSummaries"]
        ]
    finally:
        sandbox.stop()

    # Then its buckets are in that region (S3 says None for us-east-1)
    assert exports["AWS_DEFAULT_REGION"] == region
    assert locations == [None if region == "us-east-1" else region] * 2
    # and what a shell needs is in a config file of the sandbox's own, exported, never ~/.aws
    assert f"region = {region}" in config_text
    assert "cli_follow_urlparam = false" in config_text
    assert home not in config_file.parents
    assert f"export AWS_CONFIG_FILE={config_file}" in banner
    assert user_config.read_text() == "[default]\nregion = ap-south-1\n"
    assert sorted(p.name for p in (home / ".aws").iterdir()) == ["config"]
    # and the banner names what a spec needs: memberships, template ARNs, member results
    assert (
        f"#   your membership: {exports['CRQ_MEMBERSHIP_ID']} (CAN_QUERY, CAN_RECEIVE_RESULTS)"
        in (banner)
    )
    assert (
        "#   member 222222222222: 0b7d5e21-93c4-4f0a-8e6d-5c1a2f9b4e38 (CAN_RECEIVE_RESULTS)"
        in (banner)
    )
    assert len(template_arns) >= 2
    for arn in template_arns:
        assert f":{region}:" in arn
        assert any(
            line.startswith("#   analysis template ") and line.endswith(arn) for line in banner
        )
    assert any(
        "results of outputConfiguration.member land in" in line and "<query id>" in line
        for line in banner
    )
    # and the file goes away with the sandbox
    assert not config_file.exists()


def test_the_docs_no_longer_ask_to_edit_the_aws_config() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert "aws configure set" not in text, doc
