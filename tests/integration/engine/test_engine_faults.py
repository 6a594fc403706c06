"""The concurrency quota, cancelling, throttling, and the faults tests and demos ask for."""

from __future__ import annotations

from typing import Any

import pytest

from crq_local.engine import Timings
from crq_local.engine.testing import (
    MEMBERSHIP,
    Harness,
    MakeHarness,
    example_world,
    release,
    throttle,
    wait_until_idle,
)

HOLD = "SELECT 1 AS one -- crq-fault: hold"


def cancel(harness: Harness, query_id: str) -> dict:
    response = harness.cleanrooms.update_protected_query(
        membershipIdentifier=MEMBERSHIP, protectedQueryIdentifier=query_id, targetStatus="CANCELLED"
    )
    return response["protectedQuery"]


# ---- the quota: 5 queries SUBMITTED or STARTED per membership --------------------------------


def test_the_sixth_concurrent_query_exceeds_the_quota(harness: Harness) -> None:
    held = [harness.start(HOLD) for _ in range(5)]
    with pytest.raises(harness.cleanrooms.exceptions.ServiceQuotaExceededException) as caught:
        harness.start("SELECT 2 AS two")
    assert caught.value.response["quotaValue"] == 5.0
    assert caught.value.response["quotaName"]
    assert len(harness.engine.received) == 5
    # Once one ends, a slot is free again
    release(harness.engine, held[0])
    assert harness.wait_for(held[0])["status"] == "SUCCESS"
    harness.start("SELECT 2 AS two")
    release(harness.engine)
    assert wait_until_idle(harness.engine, 10)
    statuses = [
        q["status"]
        for q in harness.cleanrooms.list_protected_queries(membershipIdentifier=MEMBERSHIP)[
            "protectedQueries"
        ]
    ]
    assert statuses == ["SUCCESS"] * 6


# ---- cancel ------------------------------------------------------------------------------------


def test_cancel_a_running_query(harness: Harness) -> None:
    query_id = harness.start(HOLD)
    assert harness.wait_for(query_id, ["STARTED"])["status"] == "STARTED"
    assert cancel(harness, query_id)["status"] == "CANCELLING"
    query = harness.finish(query_id)
    assert query["status"] == "CANCELLED"
    assert "result" not in query
    assert harness.keys(f"{query_id}/") == []
    assert harness.statuses(query_id) == ["SUBMITTED", "STARTED", "CANCELLING", "CANCELLED"]


def test_cancelling_twice_is_harmless(make_harness: MakeHarness) -> None:
    harness = make_harness(timings=Timings(cancelling=30.0))
    query_id = harness.start(HOLD)
    assert cancel(harness, query_id)["status"] == "CANCELLING"
    assert cancel(harness, query_id)["status"] == "CANCELLING"


def test_cancel_before_it_starts(make_harness: MakeHarness) -> None:
    harness = make_harness(timings=Timings(submitted=30.0))
    query_id = harness.start("SELECT 1 AS one")
    assert cancel(harness, query_id)["status"] == "CANCELLING"
    assert harness.finish(query_id)["status"] == "CANCELLED"
    assert harness.statuses(query_id) == ["SUBMITTED", "CANCELLING", "CANCELLED"]


def test_a_cancel_landing_as_the_query_starts_is_not_undone(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The query's thread has seen no cancel and is about to move it to STARTED: the cancel
    # arrives in that moment (the race a loaded machine hits now and then).
    runner = harness.engine.runner
    checked = runner._ended_early
    raced: list[str] = []

    def cancel_arrives_now(q: Any) -> bool:
        ended = checked(q)
        if not ended and not raced:
            raced.append(q.id)
            runner.cancel(q)
        return ended

    monkeypatch.setattr(runner, "_ended_early", cancel_arrives_now)
    query_id = harness.start("SELECT 1 AS one")
    assert harness.finish(query_id)["status"] == "CANCELLED"
    assert raced == [query_id]
    # CANCELLING is never overwritten by STARTED: the cancelled query holds no slot
    assert harness.statuses(query_id) == ["SUBMITTED", "CANCELLING", "CANCELLED"]


def test_a_cancelled_query_frees_its_slot(harness: Harness) -> None:
    held = [harness.start(HOLD) for _ in range(5)]
    cancel(harness, held[0])
    harness.start("SELECT 2 AS two")  # no ServiceQuotaExceededException
    release(harness.engine)
    assert wait_until_idle(harness.engine, 10)


# ---- slow queries and timeouts ------------------------------------------------------


def test_a_query_slower_than_the_timeout_times_out(make_harness: MakeHarness) -> None:
    harness = make_harness(timings=Timings(timeout=0.1))
    query = harness.finish(harness.start("SELECT 1 AS one -- crq-fault: slow=1h"))
    assert query["status"] == "TIMED_OUT"


def test_a_slow_query_stays_started(harness: Harness) -> None:
    query_id = harness.start("SELECT 1 AS one -- crq-fault: slow=10m")
    assert harness.wait_for(query_id, ["STARTED"])["status"] == "STARTED"
    assert not wait_until_idle(harness.engine, 0.2)
    assert harness.get(query_id)["status"] == "STARTED"
    cancel(harness, query_id)
    assert harness.finish(query_id)["status"] == "CANCELLED"


# ---- engine-wide faults and limits -------------------------------------------------------------


def test_throttle_on_demand(harness: Harness) -> None:
    throttle(harness.engine, requests=2, operations=["StartProtectedQuery"])
    errors = harness.cleanrooms.exceptions
    for _ in range(2):
        with pytest.raises(errors.ThrottlingException):
            harness.start("SELECT 1 AS one")
    harness.cleanrooms.list_protected_queries(membershipIdentifier=MEMBERSHIP)  # not throttled
    query_id = harness.start("SELECT 1 AS one")
    assert harness.finish(query_id)["status"] == "SUCCESS"


def test_the_collaboration_file_can_throttle_the_first_requests(make_harness: MakeHarness) -> None:
    world = example_world() | {"faults": {"throttle": {"firstRequests": 2}}}
    harness = make_harness(world)
    for _ in range(2):
        with pytest.raises(harness.cleanrooms.exceptions.ThrottlingException):
            harness.cleanrooms.get_membership(membershipIdentifier=MEMBERSHIP)
    assert harness.cleanrooms.get_membership(membershipIdentifier=MEMBERSHIP)["membership"]


def test_the_rate_limit_throttles_beyond_the_burst(make_harness: MakeHarness) -> None:
    world = example_world() | {"limits": {"requestsPerSecond": 0.001, "burst": 2}}
    harness = make_harness(world)
    harness.cleanrooms.list_memberships()
    harness.cleanrooms.list_memberships()
    with pytest.raises(harness.cleanrooms.exceptions.ThrottlingException):
        harness.cleanrooms.list_memberships()


def test_botocore_retries_through_throttling(harness: Harness) -> None:
    # A client with its default retry policy rides over a short throttle, as on AWS.
    throttle(harness.engine, requests=1)
    patient = harness.session.client("cleanrooms")
    assert patient.get_membership(membershipIdentifier=MEMBERSHIP)["membership"]["id"] == (
        MEMBERSHIP
    )


@pytest.mark.parametrize(
    ("drop", "expected"),
    [(True, []), (["STARTED"], ["SUBMITTED", "SUCCESS"])],
)
def test_the_collaboration_file_can_drop_events(
    make_harness: MakeHarness, drop: object, expected: list[str]
) -> None:
    harness = make_harness(example_world() | {"faults": {"dropEvents": drop}})
    query_id = harness.start("SELECT 1 AS one")
    assert harness.finish(query_id)["status"] == "SUCCESS"
    assert harness.statuses(query_id) == expected
