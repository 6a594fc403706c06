"""Per-query faults from SQL comment hints (`-- crq-fault: ...`), on one engine per module
and mode (each case reads only its own queries; hint texts differ between cases)."""

from __future__ import annotations

import pytest

from crq_local.engine.testing import MEMBERSHIP, Harness

HOLD = "SELECT 1 AS one -- crq-fault: hold"


def test_fail_with_a_given_code(shared: Harness) -> None:
    query_id = shared.start(
        "SELECT 1 AS one\n"
        '-- crq-fault: fail code=RESOURCE_UNAVAILABLE message="Workers lost" retryable=true'
    )
    query = shared.finish(query_id)
    assert query["status"] == "FAILED"
    assert query["error"] == {"code": "RESOURCE_UNAVAILABLE", "message": "Workers lost"}
    assert shared.statuses(query_id)[-1] == "FAILED"


def test_a_fault_for_the_first_query_only_lets_the_retry_succeed(shared: Harness) -> None:
    sql = "SELECT 42 AS answer -- crq-fault: fail code=INTERNAL_ERROR retryable=true first=1"
    first = shared.finish(shared.start(sql))
    second = shared.finish(shared.start(sql))
    assert (first["status"], second["status"]) == ("FAILED", "SUCCESS")
    assert shared.csv_rows(f"{second['id']}/result/result.csv") == [{"answer": "42"}]


def test_timeout_fault(shared: Harness) -> None:
    query = shared.finish(shared.start("SELECT 1 AS one -- crq-fault: timeout"))
    assert query["status"] == "TIMED_OUT"
    assert query["error"]["code"] == "QUERY_TIMED_OUT"
    assert shared.statuses(query["id"])[-1] == "TIMED_OUT"


def test_events_can_be_dropped_or_doubled(shared: Harness) -> None:
    silent = shared.start("SELECT 1 AS one -- crq-fault: no-events")
    doubled = shared.start("SELECT 1 AS one -- crq-fault: duplicate-events")
    assert shared.finish(silent)["status"] == "SUCCESS"
    assert shared.finish(doubled)["status"] == "SUCCESS"
    assert shared.statuses(silent) == []
    assert shared.statuses(doubled) == ["SUBMITTED"] * 2 + ["STARTED"] * 2 + ["SUCCESS"] * 2


def test_a_lost_response_still_starts_the_query(shared: Harness) -> None:
    before = len(shared.engine.received)
    with pytest.raises(shared.cleanrooms.exceptions.InternalServerException):
        shared.start("SELECT 7 AS seven -- crq-fault: lost-response")
    (received,) = shared.engine.received[before:]
    query = shared.finish(received.query_id)
    assert query["status"] == "SUCCESS"
    listed = shared.cleanrooms.list_protected_queries(membershipIdentifier=MEMBERSHIP)
    assert received.query_id in [q["id"] for q in listed["protectedQueries"]]


@pytest.mark.parametrize(
    "hint", ["explode", "fail retryable=maybe", "slow=soon", "code=X", "first=0", 'fail message="x']
)
def test_a_malformed_hint_refuses_the_start(shared: Harness, hint: str) -> None:
    with pytest.raises(shared.cleanrooms.exceptions.ValidationException) as caught:
        shared.start(f"SELECT 1 -- crq-fault: {hint}")
    assert "crq-fault" in caught.value.response["message"]
