"""`crq status` and `crq watch` against AWS APIs under moto and the engine, in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from rich.console import Console
from typer.testing import CliRunner

from crq.adapters.dynamodb import DynamoLedger
from crq.ledger import (
    ErrorInfo,
    FieldProblem,
    Outcome,
    Run,
    RunEvent,
    RunState,
    TriggerType,
    in_flight_since,
)
from crq_local import stack
from crq_local.cli import aws as cli_aws
from crq_local.cli import console
from crq_local.cli.app import app
from crq_local.engine import Engine, Timings, load_config
from crq_local.engine.inprocess import installed

ROOT = Path(__file__).resolve().parents[3]
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
TABLE = "crq-prod-RunsTable-1ABC"
runner = CliRunner()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_CLEANROOMS",
        "CRQ_TABLE_NAME",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


def a_run(index: int, now: datetime, **changes: object) -> Run:
    created = now - timedelta(minutes=10 - index)
    run_id = f"s3:{index:032x}"
    values: dict[str, object] = {
        "run_id": run_id,
        "state": RunState.ENDED,
        "created_at": created,
        "updated_at": created,
        "in_flight_since": in_flight_since(created, run_id),
        "trigger_type": TriggerType.S3,
        "trigger_time": created,
        "spec_bucket": "specs",
        "spec_key": f"specs/spec-{index}.yaml",
        "spec_name": f"spec-{index}",
        "membership_id": MEMBERSHIP,
        "query_id": f"00000000-0000-4000-8000-{index:012d}",
        "outcome": Outcome(
            event=RunEvent.QUERY_SUCCEEDED,
            ended_at=created + timedelta(seconds=5),
            statistics={
                "totalDurationInMillis": 4500,
                "billedResourceUtilization": {"units": 0.25},
            },
        ),
    }
    values.update(changes)
    return Run.model_validate(values)


def deploy_stack_with_runs(runs: list[Run]) -> None:
    """A CloudFormation stack whose TableName output names a ledger table holding `runs`."""
    template = stack.load_template()
    table = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {"TableName": TABLE, **stack.table_definition(template, "RunsTable")},
    }
    boto3.client("cloudformation").create_stack(
        StackName="crq-prod",
        TemplateBody=json.dumps(
            {
                "Resources": {"RunsTable": table},
                "Outputs": {"TableName": {"Value": {"Ref": "RunsTable"}}},
            }
        ),
    )
    ledger = DynamoLedger(TABLE, boto3.client("dynamodb"))
    for run in runs:
        ledger.create(run)


@pytest.mark.usefixtures("aws")
def test_status_with_stack_reads_the_table_from_the_stack_outputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A terminal wide enough for one line per run (rich folds cells on narrow ones).
    monkeypatch.setattr(console, "out", Console(width=200, highlight=False))
    now = datetime.now(UTC)
    running = a_run(
        3, now, state=RunState.RUNNING, outcome=None, query_status="STARTED", spec_name="live"
    )
    deploy_stack_with_runs([a_run(1, now), a_run(2, now), running])

    result = runner.invoke(
        app, ["status", "--stack", "crq-prod", "--limit", "2"], env={"COLUMNS": "200"}
    )

    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "spec-" in line or "live" in line]
    # Newest first, two of them.
    assert len(rows) == 2
    assert "live" in rows[0] and "STARTED" in rows[0] and running.query_id in rows[0]
    assert "spec-2" in rows[1] and "QUERY_SUCCEEDED" in rows[1]
    assert "4.5 s" in rows[1] and "0.25" in rows[1]


@pytest.mark.usefixtures("aws")
def test_status_with_an_unknown_stack_says_so() -> None:
    result = runner.invoke(app, ["status", "--stack", "nope"])

    assert result.exit_code == 2
    assert "stack nope does not exist" in result.stderr


@pytest.mark.usefixtures("aws")
def test_watch_follows_a_query_to_its_end_and_finds_its_membership() -> None:
    engine = Engine(load_config(ROOT / "examples" / "collaboration.yaml"), timings=Timings.fast())
    with installed(engine):
        boto3.client("s3").create_bucket(Bucket="results")
        query = boto3.client("cleanrooms").start_protected_query(
            type="SQL",
            membershipIdentifier=MEMBERSHIP,
            sqlParameters={
                "queryString": "SELECT channel, COUNT(*) AS n FROM impressions GROUP BY 1"
            },
            resultConfiguration={
                "outputConfiguration": {"s3": {"resultFormat": "CSV", "bucket": "results"}}
            },
        )["protectedQuery"]

        # No --membership and no ledger: the memberships are asked in turn.
        result = runner.invoke(app, ["watch", query["id"], "--interval", "0.2"])
        unknown = runner.invoke(app, ["watch", "11111111-2222-4333-8444-555555555555"])
    engine.shutdown()

    assert result.exit_code == 0, result.output
    assert f"SUCCESS  query {query['id']}" in result.stdout
    assert "results: s3://results/" in result.stdout
    assert unknown.exit_code == 2
    assert "no membership of this account knows query" in unknown.stderr


def no_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each DynamoDB operation `crq status` makes; a Scan fails the command."""
    calls: list[str] = []
    real_client = cli_aws.client

    def refuse_scans(model: Any, **_: Any) -> None:
        calls.append(model.name)
        assert model.name != "Scan", "crq status scanned the table"

    def client(service: str) -> Any:
        made = real_client(service)
        made.meta.events.register("before-call.dynamodb", refuse_scans)
        return made

    monkeypatch.setattr(cli_aws, "client", client)
    return calls


def failed(index: int, now: datetime, **changes: object) -> Run:
    return a_run(
        index,
        now,
        outcome=Outcome(
            event=RunEvent.QUERY_FAILED,
            ended_at=now,
            error=ErrorInfo(code="MALFORMED_QUERY", message="column store_id is not allowed"),
        ),
        **changes,
    )


@pytest.mark.usefixtures("aws")
def test_status_reads_the_recent_index_with_filters_and_an_error_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console, "out", Console(width=220, highlight=False))
    now = datetime.now(UTC)
    last_year = now - timedelta(days=400)  # another partition of the index
    rejected = a_run(
        6,
        now,
        spec_name="team-b/draft",
        outcome=Outcome(
            event=RunEvent.SPEC_REJECTED,
            ended_at=now,
            errors=[
                FieldProblem(field="maxRuntimeMinutes", message="must be at least 1"),
                FieldProblem(field="x", message="unknown field"),
            ],
        ),
    )
    runs = [
        a_run(1, last_year, spec_name="team-a/x"),
        failed(2, now, spec_name="team-a/x"),
        a_run(3, now, spec_name="team-b/x"),
        a_run(4, now, spec_name="team-a/x"),
        rejected,
    ]
    deploy_stack_with_runs(runs)
    calls = no_scans(monkeypatch)

    def status(*args: str) -> list[str]:
        result = runner.invoke(app, ["status", "--stack", "crq-prod", *args])
        assert result.exit_code == 0, result.output
        return [line for line in result.stdout.splitlines() if "/" in line and "│" in line]

    # Newest first across months, the limit honoured
    everything = status("--limit", "10")
    assert [row.split("│")[1].strip() for row in everything] == [
        "team-b/draft",
        "team-a/x",
        "team-b/x",
        "team-a/x",
        "team-a/x",
    ]
    # The error column says why a run failed
    assert "MALFORMED_QUERY: column store_id is not allowed" in everything[3]
    assert "maxRuntimeMinutes: must be at least 1 (+1 more)" in everything[0]
    # --spec, --status, --since
    assert len(status("--spec", "team-a/x")) == 3
    assert len(status("--spec", "team-a/x", "--since", "7d")) == 2
    [only_failed] = status("--status", "failed")
    assert "QUERY_FAILED" in only_failed
    assert len(status("--status", "rejected")) == 1
    assert len(status("--status", "QUERY_SUCCEEDED", "--limit", "2")) == 2
    assert "Query" in calls and "Scan" not in calls

    # --json: one array, the same runs
    result = runner.invoke(app, ["status", "--stack", "crq-prod", "--json", "--status", "failed"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["spec"] == "team-a/x" and row["status"] == "QUERY_FAILED"
    assert row["error"] == "MALFORMED_QUERY: column store_id is not allowed"
    assert row["queryId"] == runs[1].query_id


@pytest.mark.usefixtures("aws")
def test_status_refuses_a_since_it_cannot_read() -> None:
    deploy_stack_with_runs([])

    result = runner.invoke(app, ["status", "--stack", "crq-prod", "--since", "last tuesday"])

    assert result.exit_code == 2
    assert "is neither an age" in result.output
