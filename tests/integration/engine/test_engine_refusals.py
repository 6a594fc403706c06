"""Requests the engine refuses, and queries that fail, on one engine per module and mode.

Every case here only sends requests and reads its own answers, so they share an engine.
"""

from __future__ import annotations

from typing import Any

import pytest

from crq_local.engine.testing import (
    CALLER,
    COLLABORATION,
    MEMBERSHIP,
    OVERLAP_ARN,
    RETAILER,
    RETAILER_MEMBERSHIP,
    Harness,
    forget,
)

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def fields(exc: Any) -> dict[str, str]:
    return {f["name"]: f["message"] for f in exc.response.get("fieldList", [])}


def distribute(*locations: dict[str, Any]) -> dict[str, Any]:
    return {"outputConfiguration": {"distribute": {"locations": list(locations)}}}


@pytest.mark.parametrize(
    ("output", "field"),
    [
        # patterns and enums botocore leaves to the service
        (
            {"outputConfiguration": {"s3": {"bucket": "Not_A_Bucket", "resultFormat": "CSV"}}},
            "resultConfiguration.outputConfiguration.s3.bucket",
        ),
        (
            {"outputConfiguration": {"s3": {"bucket": "ok-bucket", "resultFormat": "JSON"}}},
            "resultConfiguration.outputConfiguration.s3.resultFormat",
        ),
        (
            {
                "outputConfiguration": {
                    "s3": {"bucket": "ok-bucket", "resultFormat": "CSV", "keyPrefix": "a b"}
                }
            },
            "resultConfiguration.outputConfiguration.s3.keyPrefix",
        ),
        # the seed's distribute rules
        (
            distribute(
                {"s3": {"bucket": "one-bucket", "resultFormat": "CSV"}},
                {"s3": {"bucket": "two-bucket", "resultFormat": "CSV"}},
            ),
            "resultConfiguration.outputConfiguration.distribute.locations[1].s3",
        ),
        (
            distribute({"member": {"accountId": CALLER}}),
            "resultConfiguration.outputConfiguration.distribute.locations[0].member.accountId",
        ),
        (
            distribute({"member": {"accountId": "333333333333"}}),
            "resultConfiguration.outputConfiguration.distribute.locations[0].member.accountId",
        ),
        (
            {"outputConfiguration": {"member": {"accountId": "333333333333"}}},
            "resultConfiguration.outputConfiguration.member.accountId",
        ),
    ],
)
def test_invalid_result_configurations(shared: Harness, output: dict[str, Any], field: str) -> None:
    before = len(shared.engine.received)
    with pytest.raises(shared.cleanrooms.exceptions.ValidationException) as caught:
        shared.start("SELECT 1 AS one", output=output)
    assert caught.value.response["reason"] == "FIELD_VALIDATION_FAILED"
    assert field in fields(caught.value)
    assert len(shared.engine.received) == before  # nothing started


def test_a_location_with_both_s3_and_member_is_refused(shared: Harness) -> None:
    # botocore refuses this client-side; another SDK or a raw request could send it
    raw = shared.client(parameter_validation=False)
    both = {
        "s3": {"bucket": shared.bucket, "resultFormat": "CSV"},
        "member": {"accountId": RETAILER},
    }
    with pytest.raises(raw.exceptions.ValidationException) as caught:
        raw.start_protected_query(
            type="SQL",
            membershipIdentifier=MEMBERSHIP,
            sqlParameters={"queryString": "SELECT 1"},
            resultConfiguration=distribute(both),
        )
    assert "resultConfiguration.outputConfiguration.distribute.locations[0]" in fields(caught.value)


def test_a_missing_required_member_is_refused_by_the_model_check(shared: Harness) -> None:
    raw = shared.client(parameter_validation=False)
    with pytest.raises(raw.exceptions.ValidationException) as caught:
        raw.start_protected_query(
            type="SQL",
            membershipIdentifier=MEMBERSHIP,
            sqlParameters={"queryString": "SELECT 1"},
            resultConfiguration={"outputConfiguration": {"s3": {"bucket": shared.bucket}}},
        )
    got = fields(caught.value)
    assert got == {"resultConfiguration.outputConfiguration.s3.resultFormat": "is required"}


@pytest.mark.parametrize(
    ("sql_parameters", "field"),
    [
        ({"queryString": "SELECT 1", "parameters": {"a": "1"}}, "sqlParameters.parameters"),
        ({"analysisTemplateArn": OVERLAP_ARN}, "sqlParameters.parameters.end_date"),
        (
            {"analysisTemplateArn": OVERLAP_ARN, "parameters": {"end_date": "soon"}},
            "sqlParameters.parameters.end_date",
        ),
        (
            {
                "analysisTemplateArn": OVERLAP_ARN,
                "parameters": {"end_date": "2026-01-31", "region": "emea"},
            },
            "sqlParameters.parameters.region",
        ),
        (
            {"analysisTemplateArn": OVERLAP_ARN.replace("3d9a7c15", "4d9a7c15")},
            "sqlParameters.analysisTemplateArn",
        ),
    ],
)
def test_parameters_are_checked_at_start(
    shared: Harness, sql_parameters: dict[str, Any], field: str
) -> None:
    with pytest.raises(shared.cleanrooms.exceptions.ValidationException) as caught:
        shared.cleanrooms.start_protected_query(
            type="SQL",
            membershipIdentifier=MEMBERSHIP,
            sqlParameters=sql_parameters,
            resultConfiguration=shared.s3_output(),
        )
    assert field in fields(caught.value)


def test_a_parameter_value_never_appears_in_the_error(shared: Harness) -> None:
    with pytest.raises(shared.cleanrooms.exceptions.ValidationException) as caught:
        shared.start(template=OVERLAP_ARN, parameters={"end_date": "secret-value-42"})
    assert "secret-value-42" not in str(caught.value.response)


def test_a_malformed_identifier_is_a_validation_error(shared: Harness) -> None:
    with pytest.raises(shared.cleanrooms.exceptions.ValidationException) as caught:
        shared.cleanrooms.get_protected_query(
            membershipIdentifier=MEMBERSHIP.upper(), protectedQueryIdentifier=UNKNOWN_ID
        )
    assert "membershipIdentifier" in fields(caught.value)


def test_unknown_membership(shared: Harness) -> None:
    with pytest.raises(shared.cleanrooms.exceptions.ResourceNotFoundException) as caught:
        shared.start("SELECT 1 AS one", membership=UNKNOWN_ID)
    assert caught.value.response["resourceType"] == "MEMBERSHIP"
    assert caught.value.response["resourceId"] == UNKNOWN_ID


def test_another_accounts_membership_is_not_the_callers(shared: Harness) -> None:
    with pytest.raises(shared.cleanrooms.exceptions.ResourceNotFoundException):
        shared.cleanrooms.get_membership(membershipIdentifier=RETAILER_MEMBERSHIP)


def test_unknown_and_forgotten_queries(shared: Harness) -> None:
    with pytest.raises(shared.cleanrooms.exceptions.ResourceNotFoundException):
        shared.get(UNKNOWN_ID)
    query_id = shared.start("SELECT 1 AS one")
    shared.finish(query_id)
    forget(shared.engine, query_id)
    with pytest.raises(shared.cleanrooms.exceptions.ResourceNotFoundException) as caught:
        shared.get(query_id)
    assert caught.value.response["resourceId"] == query_id
    listed = shared.cleanrooms.list_protected_queries(membershipIdentifier=MEMBERSHIP)
    assert query_id not in [q["id"] for q in listed["protectedQueries"]]


def test_unknown_templates_and_collaborations(shared: Harness) -> None:
    errors = shared.cleanrooms.exceptions
    with pytest.raises(errors.ResourceNotFoundException):
        shared.cleanrooms.get_analysis_template(
            membershipIdentifier=MEMBERSHIP, analysisTemplateIdentifier=UNKNOWN_ID
        )
    with pytest.raises(errors.ResourceNotFoundException):
        shared.cleanrooms.get_collaboration_analysis_template(
            collaborationIdentifier=UNKNOWN_ID, analysisTemplateArn=OVERLAP_ARN
        )
    with pytest.raises(errors.ResourceNotFoundException):
        shared.cleanrooms.get_collaboration_analysis_template(
            collaborationIdentifier=COLLABORATION,
            analysisTemplateArn=OVERLAP_ARN.replace("3d9a7c15", "4d9a7c15"),
        )


def test_cancelling_an_ended_query_is_a_conflict(shared: Harness) -> None:
    query_id = shared.start("SELECT 1 AS one")
    shared.finish(query_id)
    with pytest.raises(shared.cleanrooms.exceptions.ConflictException) as caught:
        shared.cleanrooms.update_protected_query(
            membershipIdentifier=MEMBERSHIP,
            protectedQueryIdentifier=query_id,
            targetStatus="CANCELLED",
        )
    assert caught.value.response["resourceId"] == query_id
    assert shared.get(query_id)["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELEC 1", "MALFORMED_QUERY"),
        ("SELECT nope FROM impressions", "MALFORMED_QUERY"),
        ("SELECT * FROM customers", "MALFORMED_QUERY"),
        # an existing column the collaboration does not allow is not there at all
        ("SELECT device_type FROM impressions", "MALFORMED_QUERY"),
        ("SELECT * FROM read_csv('/etc/passwd')", "QUERY_EXECUTION_FAILED"),
        ("SELECT 1; SELECT 2", "MALFORMED_QUERY"),
        ("CREATE TABLE x AS SELECT 1", "MALFORMED_QUERY"),
        ("SELECT CAST('x' AS INTEGER)", "QUERY_EXECUTION_FAILED"),
    ],
)
def test_sql_that_cannot_run_ends_failed(shared: Harness, sql: str, code: str) -> None:
    query = shared.finish(shared.start(sql))
    assert query["status"] == "FAILED"
    assert query["error"]["code"] == code
    assert query["error"]["message"]
    assert shared.keys(f"{query['id']}/") == []


def test_a_missing_results_bucket_fails_the_query(shared: Harness) -> None:
    query_id = shared.start(
        "SELECT 1 AS one",
        output={"outputConfiguration": {"s3": {"bucket": "no-such-bucket", "resultFormat": "CSV"}}},
    )
    query = shared.finish(query_id)
    assert query["status"] == "FAILED"
    assert query["error"]["code"] == "RESULT_WRITE_FAILED"
