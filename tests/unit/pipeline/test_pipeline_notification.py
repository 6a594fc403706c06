"""The notification contract: body, subject, attributes, and its JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from pipeline_fakes import MEMBERSHIP, T0, queued_run

from crq.ledger import (
    ErrorInfo,
    FieldProblem,
    NotifyState,
    Outcome,
    ResultObject,
    Run,
    RunEvent,
    RunState,
)
from crq.notification import (
    RESERVED_ATTRIBUTES,
    attributes,
    build_notification,
    notification_schema,
    subject,
)
from crq.spec import RESERVED_NOTIFY_ATTRIBUTES

ENDED = datetime(2026, 1, 5, 6, 3, tzinfo=UTC)


def ended_run(outcome: Outcome, **changes: Any) -> Run:
    ended = dict(
        run_id="s3:abc",
        state=RunState.ENDED,
        updated_at=ENDED,
        spec_bucket="specs-bucket",
        spec_key="specs/weekly-overlap.yaml",
        spec_version_id="v1",
        spec_name="weekly-overlap",
        membership_id=MEMBERSHIP,
        membership_arn=f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}",
        query_id="0c5d2b7e-8f4a-4d1c-b3e9-6a7f1e2d3c4b",
        query_create_time=T0,
        outcome=outcome,
        notify_state=NotifyState.PENDING,
    )
    return queued_run(**(ended | changes))


SUCCEEDED = Outcome(
    event=RunEvent.QUERY_SUCCEEDED,
    ended_at=ENDED,
    query_status="SUCCESS",
    statistics={"totalDurationInMillis": 123, "billedResourceUtilization": {"units": 0.25}},
    result_output={"s3": {"location": "s3://results/x/"}},
    objects=[ResultObject(uri="s3://results/x/part-0.csv", size=99)],
    differential_privacy={
        "sensitivityParameters": [
            {"aggregationType": "COUNT", "aggregationExpression": "x", "userContributionLimit": 1}
        ]
    },
)
EXAMPLES = {
    "succeeded": SUCCEEDED,
    "failed": Outcome(
        event=RunEvent.QUERY_FAILED,
        ended_at=ENDED,
        query_status="FAILED",
        error=ErrorInfo(code="MALFORMED_QUERY", message="syntax error", retryable=False),
    ),
    "cancelled": Outcome(
        event=RunEvent.QUERY_CANCELLED,
        ended_at=ENDED,
        query_status="CANCELLED",
        reason="ran longer",
    ),
    "rejected": Outcome(
        event=RunEvent.SPEC_REJECTED,
        ended_at=ENDED,
        errors=[FieldProblem(field="sqlParameters", message="set queryString")],
    ),
}


def test_a_success_body_has_exactly_the_contracted_keys() -> None:
    body = json.loads(build_notification(ended_run(SUCCEEDED)).to_json())
    assert body == {
        "version": "1.1",
        "runId": "s3:abc",
        "event": "QUERY_SUCCEEDED",
        "notificationId": "s3:abc:1:QUERY_SUCCEEDED",
        "time": "2026-01-05T06:03:00Z",
        "spec": {
            "name": "weekly-overlap",
            "source": "s3://specs-bucket/specs/weekly-overlap.yaml",
            "version": "v1",
        },
        "trigger": {"type": "s3", "time": "2026-01-05T06:00:00Z"},
        "query": {
            "id": "0c5d2b7e-8f4a-4d1c-b3e9-6a7f1e2d3c4b",
            "membershipId": MEMBERSHIP,
            "membershipArn": f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}",
            "status": "SUCCESS",
            "createTime": "2026-01-05T06:00:00Z",
            "attempt": 1,
            "maxAttempts": 2,
        },
        "result": {
            "output": {"s3": {"location": "s3://results/x/"}},
            "objects": [{"uri": "s3://results/x/part-0.csv", "size": 99}],
        },
        "statistics": {"totalDurationInMillis": 123, "billedResourceUtilization": {"units": 0.25}},
        "differentialPrivacy": SUCCEEDED.differential_privacy,
    }


def test_a_rejection_names_no_query_and_lists_every_error() -> None:
    body = json.loads(build_notification(ended_run(EXAMPLES["rejected"], query_id=None)).to_json())
    assert set(body) == {
        "version",
        "event",
        "runId",
        "notificationId",
        "time",
        "spec",
        "trigger",
        "errors",
    }
    assert body["errors"] == [{"field": "sqlParameters", "message": "set queryString"}]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_body_validates_against_the_published_schema(name: str) -> None:
    body = json.loads(build_notification(ended_run(EXAMPLES[name])).to_json())
    jsonschema.Draft202012Validator(notification_schema()).validate(body)
    jsonschema.Draft202012Validator(notification_schema(strict=True)).validate(body)


def test_the_published_schema_lets_a_strict_consumer_survive_additive_changes() -> None:
    validator = jsonschema.Draft202012Validator(notification_schema())
    body = json.loads(build_notification(ended_run(SUCCEEDED)).to_json())
    future = {**body, "version": "1.7", "surprise": 1, "query": {**body["query"], "new": "x"}}
    assert validator.is_valid(future)
    assert validator.is_valid({**body, "event": "SCHEDULE_SET"})  # a new event is additive
    assert validator.is_valid({**body, "version": "1"})  # messages of contract 1.0
    strict = jsonschema.Draft202012Validator(notification_schema(strict=True))
    assert not strict.is_valid(future)
    assert not strict.is_valid({**body, "event": "SCHEDULE_SET"})
    assert not validator.is_valid({**body, "version": "2.0"})  # a breaking change is a major
    assert not validator.is_valid({k: v for k, v in body.items() if k != "runId"})
    assert "consumers must ignore keys they do not know" in notification_schema()["description"]


def test_the_exact_schema_is_strict_about_unknown_keys_and_the_version() -> None:
    schema = notification_schema(strict=True)
    body = json.loads(build_notification(ended_run(SUCCEEDED)).to_json())
    validator = jsonschema.Draft202012Validator(schema)
    assert not validator.is_valid({**body, "surprise": 1})
    assert not validator.is_valid({**body, "version": "2"})
    assert set(schema["properties"]["event"]["$ref"].split("/")[-1:]) == {"RunEvent"}


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (SUCCEEDED, "crq: weekly-overlap SUCCEEDED"),
        (EXAMPLES["failed"], "crq: weekly-overlap FAILED"),
        (EXAMPLES["cancelled"], "crq: weekly-overlap CANCELLED"),
        (EXAMPLES["rejected"], "crq: weekly-overlap REJECTED"),
    ],
)
def test_subject(outcome: Outcome, expected: str) -> None:
    assert subject(ended_run(outcome)) == expected


def test_subject_is_ascii_one_line_and_at_most_100_characters() -> None:
    text = subject(ended_run(SUCCEEDED, spec_name="ü" * 30 + "x\n" * 100))
    assert len(text) <= 100 and text.isascii() and "\n" not in text
    assert text.endswith("... SUCCEEDED")


def test_attributes_carry_the_spec_notify_attributes_but_never_override_crq_ones() -> None:
    run = ended_run(SUCCEEDED, notify_attributes={"team": "media", "event": "spoofed"})
    assert attributes(run) == {
        "event": "QUERY_SUCCEEDED",
        "status": "SUCCEEDED",
        "specName": "weekly-overlap",
        "membershipId": MEMBERSHIP,
        "team": "media",
    }


def test_reserved_attribute_names_agree_with_the_spec_validation() -> None:
    assert tuple(RESERVED_ATTRIBUTES) == tuple(RESERVED_NOTIFY_ATTRIBUTES)


def test_the_notification_id_is_stable_per_attempt_and_event() -> None:
    run = ended_run(SUCCEEDED)
    assert build_notification(run).notification_id == build_notification(run).notification_id
    assert (
        build_notification(run.model_copy(update={"attempt": 2})).notification_id
        == "s3:abc:2:QUERY_SUCCEEDED"
    )
