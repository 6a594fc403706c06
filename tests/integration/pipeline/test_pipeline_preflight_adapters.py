"""The adapters preflight and the cost guard add, against moto and the in-process engine: the
Clean Rooms reads in the service's shapes with errors as domain errors, and the daily budget's
counter in the runs table (counted once per query, invisible to `crq status`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config

from crq.adapters.cleanrooms import CleanRoomsGateway
from crq.adapters.dynamodb import DynamoLedger
from crq.errors import CollaborationReadFailed, CollaborationResourceNotFound
from crq.ledger import Run, RunState, TriggerType
from crq_local.engine.testing import throttle

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
COLLABORATION = "5a3e8c1d-7b2f-4d69-8e0a-1f4c6b9d2e75"
OWN_TEMPLATE = "3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64"
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


@pytest.fixture
def gateway(pipeline_stack: Any) -> CleanRoomsGateway:
    client = boto3.client("cleanrooms", config=Config(retries={"total_max_attempts": 1}))
    return CleanRoomsGateway(client=client, start_client=client)


def test_the_membership_is_read_with_status_and_abilities(gateway: CleanRoomsGateway) -> None:
    membership = gateway.get_membership(MEMBERSHIP)
    assert membership.status == "ACTIVE" and membership.collaboration_id == COLLABORATION
    assert membership.abilities == {"CAN_QUERY", "CAN_RECEIVE_RESULTS"}
    assert membership.account_id == "111111111111"


def test_a_template_is_read_with_its_parameter_types_and_defaults(
    gateway: CleanRoomsGateway,
) -> None:
    template = gateway.get_analysis_template(MEMBERSHIP, OWN_TEMPLATE)
    assert template.format == "SQL"
    assert [(p.name, p.type, p.has_default) for p in template.parameters] == [
        ("start_date", "DATE", True),
        ("end_date", "DATE", False),
    ]
    shared = gateway.get_collaboration_analysis_template(COLLABORATION, template.arn)
    assert shared.parameters == template.parameters


def test_members_are_listed_with_their_abilities(gateway: CleanRoomsGateway) -> None:
    members = {m.account_id: m for m in gateway.list_members(COLLABORATION)}
    assert members["222222222222"].abilities == {"CAN_RECEIVE_RESULTS"}
    assert members["222222222222"].status == "ACTIVE"


def test_not_found_and_unreadable_are_told_apart(
    gateway: CleanRoomsGateway, pipeline_stack: Any
) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(CollaborationResourceNotFound):
        gateway.get_analysis_template(MEMBERSHIP, missing)
    throttle(pipeline_stack.engine, requests=1)
    with pytest.raises(CollaborationReadFailed) as caught:
        gateway.get_membership(MEMBERSHIP)
    assert caught.value.code == "ThrottlingException"


def test_billed_units_count_once_per_query_and_stay_out_of_the_runs(pipeline_stack: Any) -> None:
    ledger = DynamoLedger(pipeline_stack.table_name, boto3.client("dynamodb"))
    ledger.add_billed_units("2026-01-05", "q-1", 0.25)
    ledger.add_billed_units("2026-01-05", "q-1", 0.25)  # the same ending processed again
    ledger.add_billed_units("2026-01-05", "q-2", 0.5)
    ledger.add_billed_units("2026-01-06", "q-3", 2.0)
    assert ledger.billed_units("2026-01-05") == 0.75
    assert ledger.billed_units("2026-01-06") == 2.0
    assert ledger.billed_units("2026-01-07") == 0.0
    ledger.create(
        Run(
            run_id="s3:x",
            state=RunState.QUEUED,
            created_at=T0,
            updated_at=T0,
            trigger_type=TriggerType.S3,
            trigger_time=T0,
            spec_bucket="b",
            spec_key="specs/x.yaml",
            spec_name="x",
        )
    )
    assert [r.run_id for r in ledger.recent(10)] == ["s3:x"]
    assert ledger.in_flight()[0].run_id == "s3:x" and len(ledger.in_flight()) == 1


def test_a_refused_start_keeps_code_and_reason_apart_without_repeating_the_field(
    gateway: CleanRoomsGateway,
) -> None:
    from crq.errors import StartRefused

    request = {
        "membershipIdentifier": MEMBERSHIP,
        "type": "SQL",
        "sqlParameters": {"queryString": "SELECT 1", "parameters": {"x": "1"}},
        "resultConfiguration": {
            "outputConfiguration": {
                "s3": {"resultFormat": "CSV", "bucket": "crq-results", "keyPrefix": "x/"}
            }
        },
    }
    with pytest.raises(StartRefused) as refused:
        gateway.start_protected_query(request)
    assert refused.value.code == "ValidationException"
    assert refused.value.reason == "FIELD_VALIDATION_FAILED"
    message = refused.value.message
    assert message.count("parameters are only allowed with analysisTemplateArn") == 1, message


def test_a_throttled_preflight_read_starts_the_valid_spec_anyway_and_says_so(
    pipeline_stack: Any, functions: Any, log_records: Any
) -> None:
    # Given Clean Rooms throttling every GetMembership (beyond the SDK's own retries)
    throttle(pipeline_stack.engine, requests=50, operations=["GetMembership"])
    spec = (
        f"name: throttled\nmembershipIdentifier: {MEMBERSHIP}\n"
        "sqlParameters:\n  queryString: SELECT channel FROM impressions\n"
        "resultConfiguration:\n  outputConfiguration:\n"
        "    s3: {resultFormat: CSV, bucket: crq-results, keyPrefix: throttled/}\n"
    )

    # When a valid spec is uploaded
    result = functions.start(pipeline_stack.upload("specs/throttled.yaml", spec))

    # Then the query starts, and the log says which check could not run
    assert result["outcome"] == "started", result
    assert len(pipeline_stack.engine.received) == 1
    skipped = [r for r in log_records.records if "preflight check skipped" in r.getMessage()]
    assert skipped and skipped[0].check == "GetMembership"
    assert skipped[0].errorCode == "ThrottlingException"
