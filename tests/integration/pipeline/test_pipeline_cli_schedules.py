"""`crq schedules`, `crq trigger`, `crq backfill` against the stack under moto and the engine.

The commands run as a user runs them against the sandbox (its exported variables); specs are
scheduled by uploading them through the real start handler.
"""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console
from schedule_support import KEY, scheduled_spec, upload
from typer.testing import CliRunner

from crq_local.cli import aws, console
from crq_local.cli.app import app

runner = CliRunner()


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "out", Console(width=200, highlight=False))


def runs_for(stack: Any) -> list[dict[str, Any]]:
    return [i for i in stack.items() if i["runId"].startswith("schedule:")]


@pytest.mark.usefixtures("wide")
def test_schedules_lists_expression_zone_next_runs_and_last_run(
    pipeline_stack: Any, functions: Any
) -> None:
    functions.start(
        upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)", timezone="Europe/Berlin"))
    )

    before = runner.invoke(app, ["schedules"])
    triggered = runner.invoke(app, ["trigger", KEY, "--at", "2026-03-30T06:00"])
    after = runner.invoke(app, ["schedules"])

    assert before.exit_code == 0, before.output
    row = next(line for line in before.stdout.splitlines() if KEY in line)
    assert "cron(0 6 ? * MON *)" in row and "Europe/Berlin" in row and "never" in row
    assert before.stdout.count(" 06:00 CE") == 3  # three Mondays, 06:00 CET or CEST
    assert triggered.exit_code == 0, triggered.output
    assert "2026-03-30 06:00 CEST" in after.stdout


@pytest.mark.usefixtures("wide")
def test_trigger_twice_for_one_time_starts_one_query(pipeline_stack: Any, functions: Any) -> None:
    functions.start(
        upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)", timezone="Europe/Berlin"))
    )

    first = runner.invoke(
        app, ["trigger", "team-a/weekly-overlap.yaml", "--at", "2026-03-30T06:00"]
    )
    again = runner.invoke(app, ["trigger", KEY, "--at", "2026-03-30T04:00:00Z"])  # same instant

    assert first.exit_code == 0, first.output
    assert "2026-03-30T06:00:00+02:00: started, query" in first.stdout
    assert again.exit_code == 0, again.output
    assert "already triggered" in again.stdout
    assert len(pipeline_stack.engine.received) == 1
    [received] = pipeline_stack.engine.received
    prefix = received.request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"]
    assert prefix == "weekly/2026-03-30/"
    assert len(runs_for(pipeline_stack)) == 1


@pytest.mark.usefixtures("wide")
def test_backfill_runs_each_occurrence_once_oldest_first(
    pipeline_stack: Any, functions: Any
) -> None:
    functions.start(
        upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)", timezone="Europe/Berlin"))
    )

    first = runner.invoke(app, ["backfill", KEY, "--from", "2026-03-16", "--to", "2026-04-06"])
    second = runner.invoke(app, ["backfill", KEY, "--from", "2026-03-16", "--to", "2026-04-06"])

    # Four Mondays, the DST change among them; each run once, oldest first
    assert first.exit_code == 0, first.output
    assert "4 occurrence(s) of cron(0 6 ? * MON *) Europe/Berlin" in first.stdout
    assert second.exit_code == 0, second.output
    assert "started" not in second.stdout.split("backfill summary")[1]
    prefixes = [
        r.request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"]
        for r in pipeline_stack.engine.received
    ]
    assert prefixes == [
        "weekly/2026-03-16/",
        "weekly/2026-03-23/",
        "weekly/2026-03-30/",
        "weekly/2026-04-06/",
    ]
    times = sorted(r["triggerTime"] for r in runs_for(pipeline_stack))
    assert times == [
        "2026-03-16T05:00:00Z",
        "2026-03-23T05:00:00Z",
        "2026-03-30T04:00:00Z",
        "2026-04-06T04:00:00Z",
    ]


def test_backfill_of_an_unscheduled_spec_says_so(pipeline_stack: Any, functions: Any) -> None:
    functions.start(upload(pipeline_stack, scheduled_spec(None)))

    result = runner.invoke(app, ["backfill", KEY, "--from", "2026-01-01", "--to", "2026-01-31"])

    assert result.exit_code == 2
    assert "has no schedule: nothing to backfill" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trigger", KEY, "--at", "next monday"], "--at 'next monday' is not an ISO 8601"),
        (["trigger", "specs/missing.yaml", "--at", "2026-01-01"], "specs/missing.yaml"),
        (
            ["backfill", KEY, "--from", "2026-02-01", "--to", "2026-01-01"],
            "--to (2026-01-01) must be after --from (2026-02-01)",
        ),
    ],
)
def test_bad_arguments_get_one_clear_line(
    pipeline_stack: Any, functions: Any, args: list[str], message: str
) -> None:
    functions.start(upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)")))

    result = runner.invoke(app, args)

    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_status_is_not_confused_by_spec_state_records(pipeline_stack: Any, functions: Any) -> None:
    # A scheduled upload writes a spec-state record in the runs table, and no run.
    functions.start(upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)")))
    from crq.schedule_state import state_id

    record = pipeline_stack.dynamodb.get_item(
        TableName=pipeline_stack.table_name,
        Key={"runId": {"S": state_id(pipeline_stack.specs_bucket, KEY)}},
    )
    assert "Item" in record

    result = runner.invoke(app, ["status"])

    assert result.exit_code == 0, result.output
    assert "no runs yet" in result.stdout


def test_trigger_with_stack_invokes_the_stacks_start_function(
    pipeline_stack: Any, functions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployed stack (its outputs) whose start function is crq's handler
    import io
    import json

    import boto3

    functions.start(
        upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)", timezone="Europe/Berlin"))
    )
    outputs = {
        "TableName": pipeline_stack.table_name,
        "SpecsBucketName": pipeline_stack.specs_bucket,
        "StartFunctionName": "crq-prod-start",
    }
    boto3.client("cloudformation").create_stack(
        StackName="crq-prod",
        TemplateBody=json.dumps(
            {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()},
            }
        ),
    )
    invoked: list[tuple[str, dict[str, Any]]] = []

    class Lambda:
        def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> Any:
            event = json.loads(Payload)
            invoked.append((FunctionName, event))
            result = functions.start(event)
            return {"Payload": io.BytesIO(json.dumps(result).encode())}

    real_client = aws.client
    monkeypatch.setattr(
        aws, "client", lambda service: Lambda() if service == "lambda" else real_client(service)
    )
    for name in ("CRQ_TABLE_NAME", "CRQ_SPECS_BUCKET", "CRQ_TOPIC_ARN"):
        monkeypatch.delenv(name, raising=False)

    # When the user triggers it against the stack, twice
    args = ["trigger", KEY, "--at", "2026-03-30T06:00", "--stack", "crq-prod"]
    first, again = runner.invoke(app, args), runner.invoke(app, args)

    # Then the stack's start function ran it as scheduled at that time, once
    assert first.exit_code == 0, first.output
    assert "started, query" in first.stdout and "already triggered" in again.stdout
    assert [name for name, _ in invoked] == ["crq-prod-start", "crq-prod-start"]
    assert invoked[0][1]["specKey"] == KEY
    assert invoked[0][1]["scheduledTime"] == "2026-03-30T04:00:00Z"
    assert len(pipeline_stack.engine.received) == 1
