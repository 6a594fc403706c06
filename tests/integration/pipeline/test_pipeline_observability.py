"""What operators see: the Powertools metrics each handler emits, and logs and messages that
never hold a query parameter value."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from test_pipeline_flow import CHANNELS, MEMBERSHIP, OVERLAP_SPEC, settle, sql_spec

from crq.metrics import MetricName
from crq_local.engine import EngineConfig, parse_config
from crq_local.engine.testing import EXAMPLE, example_world

SECRET = "tok-PLANTED-SECRET-7731"
LOOKUP_ID = "7e1d2c3b-4a5f-4e6d-8c7b-9a0b1c2d3e4f"
STRICT_ID = "2a6b9c8d-1e0f-4a3b-8c5d-6e7f8a9b0c1d"


def emitted_metrics(out: str) -> dict[str, list[float]]:
    """Every metric in the EMF blobs printed to stdout, with all its values."""
    found: dict[str, list[float]] = {}
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "crq" and ["service"] in directive["Dimensions"]
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                found.setdefault(metric["Name"], []).extend(
                    values if isinstance(values, list) else [values]
                )
    return found


def test_every_metric_is_emitted_with_the_values_the_queries_report(
    pipeline_stack: Any,
    functions: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CRQ_MEMBERSHIP_QUERY_CAP", "1")
    capsys.readouterr()
    # A query that succeeds (started, succeeded, duration, CRPU, published) ...
    functions.start(pipeline_stack.upload("specs/weekly-overlap.yaml", OVERLAP_SPEC))
    # ... a second one waiting for the single slot (queued) ...
    flaky = CHANNELS + "\n-- crq-fault: fail code=INTERNAL_ERROR retryable=true first=1"
    functions.start(pipeline_stack.upload("specs/flaky.yaml", sql_spec(flaky, name="flaky")))
    # ... a spec that is rejected ...
    functions.start(pipeline_stack.upload("specs/bad.yaml", "name: 12\n"))
    for _ in range(4):  # the flaky one fails once (retried) and then succeeds
        settle(pipeline_stack, functions)
        functions.track({"source": "crq.track"})
    # ... and one that fails for good
    functions.start(
        pipeline_stack.upload(
            "specs/broken.yaml", sql_spec("SELECT nope FROM impressions", name="broken")
        )
    )
    settle(pipeline_stack, functions)

    metrics = emitted_metrics(capsys.readouterr().out)
    assert set(metrics) == {name.value for name in MetricName}
    assert sum(metrics["QueriesStarted"]) == 4  # overlap, flaky twice, broken
    assert sum(metrics["QueriesSucceeded"]) == 2 and sum(metrics["QueriesFailed"]) == 1
    assert sum(metrics["SpecsRejected"]) == 1 and sum(metrics["QueriesRetried"]) == 1
    assert sum(metrics["StartsQueued"]) >= 1
    assert sum(metrics["NotificationsPublished"]) == 4
    bodies = [m["body"] for m in pipeline_stack.notifications(4)]
    ended = [b for b in bodies if "statistics" in b]
    assert sorted(metrics["QueryDuration"]) == sorted(
        float(b["statistics"]["totalDurationInMillis"]) for b in ended
    )
    assert sorted(metrics["CrpuUnits"]) == sorted(
        b["statistics"]["billedResourceUtilization"]["units"] for b in ended
    )


@pytest.fixture
def collaboration() -> EngineConfig:
    """The example world plus two templates taking a secret-looking parameter."""
    world = example_world()
    templates = world["collaborations"][0]["analysisTemplates"]
    templates.append(
        {
            "name": "channel_lookup",
            "id": LOOKUP_ID,
            "sql": "SELECT channel, COUNT(*) AS n FROM impressions WHERE channel <> :token GROUP BY channel",
            "parameters": [{"name": "token", "type": "VARCHAR"}],
        }
    )
    templates.append(
        {
            "name": "strict_lookup",
            "id": STRICT_ID,
            "sql": "SELECT COUNT(*) AS n FROM impressions WHERE CAST(:token AS INTEGER) > 0",
            "parameters": [{"name": "token", "type": "VARCHAR"}],
        }
    )
    return parse_config(world, source=EXAMPLE)


def template_spec(name: str, template_id: str) -> str:
    arn = f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}/analysistemplate/{template_id}"
    return (
        f"name: {name}\nmembershipIdentifier: {MEMBERSHIP}\n"
        f"sqlParameters:\n  analysisTemplateArn: {arn}\n  parameters:\n    token: {SECRET}\n"
        "resultConfiguration:\n  outputConfiguration:\n"
        f"    s3: {{resultFormat: CSV, bucket: crq-results, keyPrefix: {name}/}}\n"
    )


def test_a_parameter_value_never_reaches_logs_notifications_or_the_ledger(
    pipeline_stack: Any,
    functions: Any,
    log_records: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given specs carrying a secret parameter value: one that runs, one whose query fails on it
    functions.start(pipeline_stack.upload("specs/lookup.yaml", template_spec("lookup", LOOKUP_ID)))
    functions.start(pipeline_stack.upload("specs/strict.yaml", template_spec("strict", STRICT_ID)))
    settle(pipeline_stack, functions)
    functions.track({"source": "crq.track"})

    # Then the queries did get the value (the test would prove nothing otherwise) ...
    assert all(
        r.request["sqlParameters"]["parameters"]["token"] == SECRET
        for r in pipeline_stack.engine.received
    )
    messages = pipeline_stack.notifications(2)
    events = sorted(m["body"]["event"] for m in messages)
    assert events == ["QUERY_FAILED", "QUERY_SUCCEEDED"], events
    failed = next(m["body"] for m in messages if m["body"]["event"] == "QUERY_FAILED")
    # Clean Rooms' own error message quotes the value; crq's notification does not
    raw = boto3.client("cleanrooms").get_protected_query(
        membershipIdentifier=MEMBERSHIP, protectedQueryIdentifier=failed["query"]["id"]
    )
    assert SECRET in raw["protectedQuery"]["error"]["message"]
    assert "***" in failed["error"]["message"]
    # ... but no log line, message or ledger row holds it
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err
    assert SECRET not in log_records.text()
    assert all(SECRET not in m["raw"] for m in messages)
    assert SECRET not in json.dumps(pipeline_stack.items(), default=str)
