"""Guarantee 5: bounded runtime.

A query running longer than the spec's `maxRuntimeMinutes` (or the stack's default) is cancelled
with UpdateProtectedQuery, once, and its run notified QUERY_CANCELLED with the reason. A query
that ends between crq's look at it and the cancel (Clean Rooms answers ConflictException) is
reported as it really ended.

Already proven in tests/integration/pipeline/test_pipeline_flow.py: the spec's own limit
(`test_a_query_past_its_max_runtime_is_cancelled_and_notified`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3
import pytest
from reliability_support import (
    MEMBERSHIP,
    TICK,
    CleanRoomsCalls,
    Clock,
    bodies,
    settle,
    sql_spec,
    wait_for,
)

from crq.adapters.cleanrooms import CleanRoomsGateway
from crq_local.engine.testing import release


def test_the_stack_default_limit_cancels_once_and_says_why(
    pipeline_stack: Any,
    functions: Any,
    clock: Clock,
    calls: CleanRoomsCalls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRQ_DEFAULT_MAX_RUNTIME_MINUTES", "10")
    engine = pipeline_stack.engine
    # Cancelling takes a moment in Clean Rooms: ticks meanwhile see the query CANCELLING.
    engine.timings = dataclasses.replace(engine.timings, cancelling=0.3)
    # Given a spec without maxRuntimeMinutes whose query runs on and on
    functions.start(pipeline_stack.upload("specs/endless.yaml", sql_spec("endless", fault="hold")))
    # When the track ticks before the stack's limit: nothing is cancelled
    clock.advance(minutes=9)
    assert functions.track(TICK)["cancelled"] == 0
    # When it ticks past the limit, and again while Clean Rooms is cancelling
    clock.advance(minutes=2)
    assert functions.track(TICK)["cancelled"] == 1
    functions.track(TICK)
    functions.track(TICK)
    settle(pipeline_stack, functions)
    functions.track(TICK)
    # Then the query was cancelled once, and the run is notified with the reason
    assert calls.count("UpdateProtectedQuery") == 1
    [body] = bodies(pipeline_stack.notifications(1, timeout=0.5))
    assert (body["event"], body["query"]["status"]) == ("QUERY_CANCELLED", "CANCELLED")
    assert body["reason"] == "ran longer than maxRuntimeMinutes (10 minutes)"


def test_a_query_that_ends_before_the_cancel_is_reported_as_it_ended(
    pipeline_stack: Any,
    functions: Any,
    clock: Clock,
    calls: CleanRoomsCalls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = pipeline_stack.engine
    started = functions.start(
        pipeline_stack.upload(
            "specs/photo-finish.yaml",
            sql_spec("photo-finish", fault="hold", extra="maxRuntimeMinutes: 5\n"),
        )
    )
    query_id = started["query_id"]
    # Given a query that finishes right after the track has listed it as running
    original = CleanRoomsGateway.list_queries

    def list_then_finish(self: CleanRoomsGateway, *args: Any, **kwargs: Any) -> Any:
        listed = original(self, *args, **kwargs)
        release(engine, query_id)
        wait_for(engine, query_id)
        return listed

    monkeypatch.setattr(CleanRoomsGateway, "list_queries", list_then_finish)
    # When the track, past the limit, cancels it: Clean Rooms answers ConflictException
    clock.advance(minutes=6)
    summary = functions.track(TICK)
    assert calls.errors("UpdateProtectedQuery") == ["ConflictException"]
    # Then the run is reported as it really ended, not as cancelled, and nothing failed
    assert summary["ended"] == 1 and summary["cancelled"] == 0
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["event"] == "QUERY_SUCCEEDED" and "reason" not in body


def test_a_query_cancelled_by_someone_else_is_reported_as_such(
    pipeline_stack: Any, functions: Any
) -> None:
    started = functions.start(
        pipeline_stack.upload("specs/interrupted.yaml", sql_spec("interrupted", fault="hold"))
    )
    boto3.session.Session().client("cleanrooms").update_protected_query(
        membershipIdentifier=MEMBERSHIP,
        protectedQueryIdentifier=started["query_id"],
        targetStatus="CANCELLED",
    )
    settle(pipeline_stack, functions)
    [body] = bodies(pipeline_stack.notifications(1))
    assert (body["event"], body["reason"]) == ("QUERY_CANCELLED", "cancelled outside crq")
