"""The protected-query gateway's contract (crq.ports.QueryGateway): FakeCleanRooms, and
CleanRoomsGateway against the local Clean Rooms engine."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from contract_support import CleanRooms

from crq.errors import QueryAlreadyEnded, QueryNotFound, StartDeferred, StartRefused

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"  # the example collaboration's caller
HOLD = "-- crq-fault: hold"  # the engine keeps the query running until it is finished


def request(sql: str = "SELECT channel FROM impressions", **extra: Any) -> dict[str, Any]:
    return {
        "type": "SQL",
        "membershipIdentifier": MEMBERSHIP,
        "sqlParameters": {"queryString": sql},
        "resultConfiguration": {
            "outputConfiguration": {
                "s3": {"resultFormat": "CSV", "bucket": "crq-results", "keyPrefix": "contract/"}
            }
        },
        **extra,
    }


def held() -> dict[str, Any]:
    return request(f"SELECT channel FROM impressions {HOLD}")


def test_a_started_query_is_submitted_listed_and_got(clean_rooms: CleanRooms) -> None:
    gateway = clean_rooms.gateway
    started = gateway.start_protected_query(held())
    assert (started.status, started.membership_id) == ("SUBMITTED", MEMBERSHIP)
    assert started.membership_arn.endswith(f":membership/{MEMBERSHIP}")
    assert not started.ended
    [listed] = gateway.list_queries(MEMBERSHIP, None)
    assert (listed.id, listed.create_time) == (started.id, started.create_time)
    got = gateway.get_query(MEMBERSHIP, started.id)
    assert got.id == started.id and not got.ended
    assert got.sql_parameters == held()["sqlParameters"]
    assert got.result_configuration == held()["resultConfiguration"]


def test_a_finished_query_has_its_results_and_statistics(clean_rooms: CleanRooms) -> None:
    query_id = clean_rooms.gateway.start_protected_query(request()).id
    clean_rooms.finish(query_id)
    got = clean_rooms.gateway.get_query(MEMBERSHIP, query_id)
    assert got.status == "SUCCESS" and got.ended
    assert got.result_output is not None
    assert got.result_output["s3"]["location"].startswith("s3://crq-results/contract/")
    assert got.statistics is not None
    assert got.statistics["totalDurationInMillis"] >= 0
    assert got.statistics["billedResourceUtilization"]["units"] >= 0
    assert (got.error_code, got.error_message, got.error_retryable) == (None, None, None)
    [listed] = clean_rooms.gateway.list_queries(MEMBERSHIP, None)
    assert listed.status == "SUCCESS" and listed.ended


def test_a_failed_query_says_why_and_whether_a_retry_may_help(clean_rooms: CleanRooms) -> None:
    query_id = clean_rooms.start_failing(request(), "INTERNAL_ERROR", "disk full", True)
    got = clean_rooms.gateway.get_query(MEMBERSHIP, query_id)
    assert got.status == "FAILED" and got.ended
    assert (got.error_code, got.error_message, got.error_retryable) == (
        "INTERNAL_ERROR",
        "disk full",
        True,
    )
    assert got.result_output is None


def test_queries_are_listed_newest_first_paging_only_as_far_back_as_asked(
    clean_rooms: CleanRooms,
) -> None:
    gateway = clean_rooms.gateway
    ids = []
    for _ in range(5):
        ids.append(gateway.start_protected_query(request()).id)
        clean_rooms.finish(ids[-1])
    clean_rooms.page_size(2)
    # Without a bound: one page, the newest
    assert [q.id for q in gateway.list_queries(MEMBERSHIP, None)] == ids[:-3:-1]
    # Back to the oldest: every page that far
    oldest = gateway.get_query(MEMBERSHIP, ids[0]).create_time
    assert [q.id for q in gateway.list_queries(MEMBERSHIP, oldest)] == ids[::-1]


def test_an_unknown_query_is_not_found(clean_rooms: CleanRooms) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(QueryNotFound):
        clean_rooms.gateway.get_query(MEMBERSHIP, unknown)
    with pytest.raises(QueryNotFound):
        clean_rooms.gateway.cancel_query(MEMBERSHIP, unknown)


def test_a_running_query_is_cancelled(clean_rooms: CleanRooms) -> None:
    query_id = clean_rooms.gateway.start_protected_query(held()).id
    clean_rooms.gateway.cancel_query(MEMBERSHIP, query_id)
    status = clean_rooms.gateway.get_query(MEMBERSHIP, query_id).status
    assert status in ("CANCELLING", "CANCELLED")


def test_an_ended_query_cannot_be_cancelled(clean_rooms: CleanRooms) -> None:
    query_id = clean_rooms.gateway.start_protected_query(request()).id
    clean_rooms.finish(query_id)
    with pytest.raises(QueryAlreadyEnded):
        clean_rooms.gateway.cancel_query(MEMBERSHIP, query_id)
    assert clean_rooms.gateway.get_query(MEMBERSHIP, query_id).status == "SUCCESS"


def test_the_sixth_running_query_of_a_membership_is_deferred(clean_rooms: CleanRooms) -> None:
    gateway = clean_rooms.gateway
    running = [gateway.start_protected_query(held()).id for _ in range(5)]
    with pytest.raises(StartDeferred) as deferred:
        gateway.start_protected_query(held())
    assert deferred.value.code == StartDeferred.QUOTA
    assert len(gateway.list_queries(MEMBERSHIP, None)) == 5  # nothing started
    # Once one has ended, there is room again
    clean_rooms.finish(running[0])
    assert gateway.start_protected_query(request()).status == "SUBMITTED"


def test_a_start_in_a_membership_crq_is_not_part_of_is_refused(clean_rooms: CleanRooms) -> None:
    stranger = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(StartRefused):
        clean_rooms.gateway.start_protected_query(request(membershipIdentifier=stranger))
    assert clean_rooms.gateway.list_queries(MEMBERSHIP, None) == []
