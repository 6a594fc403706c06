"""Guarantee 2: queue, don't fail, at the cap.

Clean Rooms runs at most 5 queries per membership at once. Specs uploaded in bulk all run, never
more than the cap at a time, oldest first, each notified once; a start Clean Rooms refuses for the
quota or throttling leaves the run queued until a later pass starts it.

Already proven in tests/integration/pipeline/test_pipeline_flow.py: seven uploads, five started
and two queued (`test_uploads_beyond_the_cap_queue_and_all_run_five_at_a_time`).
"""

from __future__ import annotations

import random
import time
from typing import Any

import boto3
import pytest
from reliability_support import (
    CHANNELS,
    ENDED,
    MEMBERSHIP,
    TICK,
    ActiveQueries,
    CleanRoomsCalls,
    Clock,
    bodies,
    ledger_rows,
    sql_spec,
    wait_for,
)

from crq_local.engine import status_events as engine_events
from crq_local.engine.testing import release, throttle, wait_until_idle


def events_until_ended(stack_: Any, query_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The status events delivered, polled until the ended one of `query_id` is among them."""
    delivered: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not any(
        event["detail"]["protectedQueryId"] == query_id and event["detail"]["status"] in ENDED
        for event in delivered
    ):
        assert time.monotonic() < deadline, f"no ended status event for {query_id}"
        batch = stack_.status_events()
        delivered += batch
        if not batch:
            time.sleep(0.01)
    return delivered


def spec_name_of(received: Any) -> str:
    prefix: str = received.request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"]
    return prefix.rstrip("/")


@pytest.mark.parametrize(
    ("cap", "specs", "event_delay"),
    [(5, 20, 0.0), (3, 8, 0.0), (3, 8, 0.05)],
    ids=["cap-5", "cap-3", "cap-3-late-events"],
)
def test_specs_uploaded_at_once_all_run_never_more_than_the_cap_oldest_first(
    pipeline_stack: Any,
    functions: Any,
    active: ActiveQueries,
    calls: CleanRoomsCalls,
    monkeypatch: pytest.MonkeyPatch,
    cap: int,
    specs: int,
    event_delay: float,
) -> None:
    # CRQ_MEMBERSHIP_QUERY_CAP below Clean Rooms' own 5 shows the cap is crq's doing.
    monkeypatch.setenv("CRQ_MEMBERSHIP_QUERY_CAP", str(cap))
    if event_delay:
        # A loaded machine: status events reach the queue well after the query has ended
        # (this once made the test choose from no running query at all).
        late_put = engine_events.put

        def put(client: Any, entries: Any) -> None:
            time.sleep(event_delay)
            late_put(client, entries)

        monkeypatch.setattr(engine_events, "put", put)
    names = [f"bulk-{i:02d}" for i in range(specs)]
    engine = pipeline_stack.engine
    # Given `specs` specs of one membership uploaded at once, each query held until released
    events = [pipeline_stack.upload(f"specs/{n}.yaml", sql_spec(n, fault="hold")) for n in names]
    outcomes = [functions.start(event)["outcome"] for event in events]
    # Then `cap` start and the rest wait, without Clean Rooms being asked
    assert outcomes == ["started"] * cap + ["queued"] * (specs - cap)
    assert active.sample() == cap

    # When the queries end one at a time, in no particular order, and their status events
    # reach the track function (with a scheduled tick now and then)
    rng = random.Random(specs)
    released: set[str] = set()
    for step in range(specs):
        victim = rng.choice([r.query_id for r in engine.received if r.query_id not in released])
        released.add(victim)
        release(engine, victim)
        wait_for(engine, victim)
        # The engine sends status events from a thread of its own: a query can read as ended
        # before its event is on the queue. Wait for that event, not for the status alone.
        for event in events_until_ended(pipeline_stack, victim):
            functions.track(event)
            active.sample()
        if step % 4 == 3:
            functions.track(TICK)
            active.sample()
    assert wait_until_idle(engine, 10)
    for event in pipeline_stack.status_events():
        functions.track(event)
    functions.track(TICK)

    # Then every spec ran once, oldest first, never more than the cap at a time
    assert [spec_name_of(r) for r in engine.received] == names
    assert active.peak == cap, active.samples
    # and Clean Rooms never had to refuse a start: crq kept count itself
    assert calls.errors("StartProtectedQuery") == []
    # And every run was notified exactly once
    messages = bodies(pipeline_stack.notifications(specs, timeout=2))
    assert sorted(m["spec"]["name"] for m in messages) == names
    assert {m["event"] for m in messages} == {"QUERY_SUCCEEDED"}
    assert len({m["notificationId"] for m in messages}) == specs
    assert {row["notifyState"] for row in ledger_rows(pipeline_stack).values()} == {"SENT"}


def test_a_throttled_start_stays_queued_and_runs_later(
    pipeline_stack: Any, functions: Any, clock: Clock, calls: CleanRoomsCalls
) -> None:
    # Given Clean Rooms throttling the next StartProtectedQuery
    throttle(pipeline_stack.engine, requests=1, operations=["StartProtectedQuery"])
    event = pipeline_stack.upload("specs/throttled.yaml", sql_spec("throttled"))
    # When the spec is uploaded: the run is queued, not failed, and nobody is told anything yet
    result = functions.start(event)
    assert (result["outcome"], result["detail"]) == ("queued", "ThrottlingException")
    assert calls.errors("StartProtectedQuery") == ["ThrottlingException"]
    assert pipeline_stack.items()[0]["state"] == "QUEUED"
    assert pipeline_stack.notifications(0, timeout=0) == []
    # And a tick right away leaves it alone (it backs off), a later one starts it
    functions.track(TICK)
    assert pipeline_stack.engine.received == []
    clock.advance(seconds=10)
    assert functions.track(TICK)["started"] == 1
    assert wait_until_idle(pipeline_stack.engine, 10)
    functions.track(TICK)
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["event"] == "QUERY_SUCCEEDED" and body["query"]["attempt"] == 1


def test_queries_started_outside_crq_hold_slots_and_the_quota_refusal_queues(
    pipeline_stack: Any, functions: Any, calls: CleanRoomsCalls
) -> None:
    # Given someone else's five queries filling the membership
    other = boto3.session.Session().client("cleanrooms")
    theirs = [
        other.start_protected_query(
            type="SQL",
            membershipIdentifier=MEMBERSHIP,
            sqlParameters={"queryString": CHANNELS + "\n-- crq-fault: hold"},
            resultConfiguration={
                "outputConfiguration": {"s3": {"bucket": "crq-results", "resultFormat": "CSV"}}
            },
        )["protectedQuery"]["id"]
        for _ in range(5)
    ]
    # When a spec is uploaded, Clean Rooms refuses it for the quota: the run is queued
    event = pipeline_stack.upload("specs/polite.yaml", sql_spec("polite"))
    assert functions.start(event)["detail"] == "ServiceQuotaExceededException"
    assert pipeline_stack.items()[0]["state"] == "QUEUED"
    # And while their queries run, the track counts them and does not ask again
    functions.track(TICK)
    assert calls.count("StartProtectedQuery") == 1
    # When they end, the next tick starts it, and it is notified
    release(pipeline_stack.engine)
    for query_id in theirs:
        wait_for(pipeline_stack.engine, query_id)
    assert functions.track(TICK)["started"] == 1
    assert wait_until_idle(pipeline_stack.engine, 10)
    functions.track(TICK)
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["spec"]["name"] == "polite" and body["event"] == "QUERY_SUCCEEDED"
