"""Contract 1.1 details built from a run: the template ARN and result prefix of the rendered
request, member output without `objects`, the e-mail text, the error's code and reason apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pipeline_fakes import BUCKET, MEMBERSHIP, world

from crq.ledger import AttemptCost, ErrorInfo, Outcome, Run, RunEvent, RunState, TriggerType
from crq.notification import build_notification
from crq.notification_text import notification_text
from crq.starter import start_run
from crq.tracker import track_in_flight
from crq.triggers import SpecUploaded

T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
ARN = f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}/analysistemplate/t1"


def run(outcome: Outcome, **changes: object) -> Run:
    values: dict[str, object] = dict(
        run_id="s3:abc",
        state=RunState.ENDED,
        created_at=T0,
        updated_at=T0,
        trigger_type=TriggerType.S3,
        trigger_time=T0,
        spec_bucket="specs",
        spec_key="specs/daily.yaml",
        spec_name="daily",
        membership_id=MEMBERSHIP,
        query_id="q-2",
        request={
            "membershipIdentifier": MEMBERSHIP,
            "sqlParameters": {"analysisTemplateArn": ARN, "parameters": {"d": "***"}},
            "resultConfiguration": {
                "outputConfiguration": {
                    "s3": {"resultFormat": "CSV", "bucket": "out", "keyPrefix": "daily/2026-01-05/"}
                }
            },
        },
        attempts=[
            AttemptCost(query_id="q-1", status="FAILED", billed_units=0.25),
            AttemptCost(query_id="q-2", status="FAILED", billed_units=0.5),
        ],
        attempt=2,
    )
    values.update(changes)
    return Run.model_validate({**values, "outcome": outcome})


FAILED = Outcome(
    event=RunEvent.QUERY_FAILED,
    ended_at=T0,
    query_status="FAILED",
    error=ErrorInfo(code="INTERNAL_ERROR", message="worker lost", retryable=True),
)


def test_the_query_names_its_template_and_rendered_result_prefix() -> None:
    body = json.loads(build_notification(run(FAILED)).to_json())
    assert body["query"]["analysisTemplateArn"] == ARN
    assert body["query"]["resultPrefix"] == "s3://out/daily/2026-01-05/"
    assert body["cost"] == {
        "attempts": [
            {"queryId": "q-1", "status": "FAILED", "billedUnits": 0.25},
            {"queryId": "q-2", "status": "FAILED", "billedUnits": 0.5},
        ],
        "totalBilledUnits": 0.75,
    }


def test_code_and_reason_travel_apart() -> None:
    refused = Outcome(
        event=RunEvent.START_FAILED,
        ended_at=T0,
        error=ErrorInfo(
            code="ValidationException", reason="FIELD_VALIDATION_FAILED", message="bad column"
        ),
    )
    body = json.loads(build_notification(run(refused, attempts=[], query_id=None)).to_json())
    assert body["error"] == {
        "code": "ValidationException",
        "reason": "FIELD_VALIDATION_FAILED",
        "message": "bad column",
        "retryable": False,
    }
    assert "cost" not in body  # no query ran, nothing was billed


def test_the_email_text_is_readable_and_says_what_matters() -> None:
    text = notification_text(build_notification(run(FAILED)))
    assert text.splitlines()[0] == "crq: daily QUERY_FAILED"
    assert "Error: INTERNAL_ERROR" in text and "worker lost" in text
    assert "Cost: 0.75 CRPU hours" in text and "q-1: FAILED, 0.25 CRPU hours" in text
    assert "Template:  " + ARN in text
    assert "{" not in text and "***" not in text  # no JSON, no redacted parameter noise


def test_member_output_leaves_objects_out_rather_than_an_empty_list() -> None:
    w = world()
    key = "specs/member.yaml"
    version = w.specs.put(
        key,
        f"membershipIdentifier: {MEMBERSHIP}\nsqlParameters:\n  queryString: SELECT 1\n"
        "resultConfiguration:\n  outputConfiguration:\n    member: {accountId: '222222222222'}\n",
    )
    start_run(SpecUploaded(BUCKET, key, version, "e", 10, w.clock(), "ev"), w.deps)
    query_id = w.ledger.only().query_id or ""
    w.cleanrooms.end(query_id, "SUCCESS", result_output={"memberList": [{"accountId": "2" * 12}]})
    track_in_flight(w.deps)
    [body] = w.publisher.bodies()
    assert body["result"] == {"output": {"memberList": [{"accountId": "2" * 12}]}}
    assert "resultPrefix" not in body["query"]
    assert w.publisher.messages[0].text is not None  # e-mail gets its own text
