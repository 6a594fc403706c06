"""Guarantee 4: no run forgotten.

Clean Rooms' status events are best effort: lost, duplicated, out of order, or naming a status
the query has not reached. They are wake-ups only, so none of that changes how a run ends or how
often it is notified; the scheduled track catches everything. A query Clean Rooms no longer
knows is reported (QUERY_FAILED, QUERY_NOT_FOUND), and never polled again.

Already proven in tests/integration/pipeline/test_pipeline_flow.py: one query's events lost,
the tick catches it (`test_a_missed_status_event_is_caught_by_the_scheduled_track`).
"""

from __future__ import annotations

from typing import Any

import pytest
from reliability_support import (
    TICK,
    CleanRoomsCalls,
    bodies,
    settle,
    sql_spec,
    status_event,
    wait_for,
)

from crq_local.engine import EngineConfig, parse_config
from crq_local.engine.testing import EXAMPLE, example_world, forget, release, wait_until_idle

# Three runs and how each must end, whatever happens to the status events.
SPECS = {
    "fine": sql_spec("fine"),
    "broken": sql_spec("broken", fault='fail code=DATA_SOURCE_UNAVAILABLE message="offline"'),
    "late": sql_spec("late", fault="timeout"),
}
OUTCOMES = {
    "fine": ("QUERY_SUCCEEDED", "SUCCESS", None),
    "broken": ("QUERY_FAILED", "FAILED", "DATA_SOURCE_UNAVAILABLE"),
    "late": ("QUERY_TIMED_OUT", "TIMED_OUT", "QUERY_TIMED_OUT"),
}


@pytest.fixture
def collaboration(request: pytest.FixtureRequest) -> EngineConfig:
    """The example world; `dropped` as the parameter makes the engine drop every status event."""
    world = example_world()
    if getattr(request, "param", None) == "dropped":
        world.setdefault("faults", {})["dropEvents"] = True
    return parse_config(world, source=EXAMPLE)


def outcomes_of(messages: list[dict[str, Any]]) -> dict[str, tuple[str, str, str | None]]:
    return {
        b["spec"]["name"]: (b["event"], b["query"]["status"], b.get("error", {}).get("code"))
        for b in bodies(messages)
    }


@pytest.mark.parametrize(
    ("collaboration", "events"),
    [
        ("normal", "delivered"),
        ("dropped", "lost"),
        ("normal", "duplicated, reversed and late"),
    ],
    indirect=["collaboration"],
)
def test_how_runs_end_does_not_depend_on_the_status_events(
    pipeline_stack: Any, functions: Any, events: str
) -> None:
    # Given three runs that end three ways
    for name, spec in SPECS.items():
        functions.start(pipeline_stack.upload(f"specs/{name}.yaml", spec))
    assert wait_until_idle(pipeline_stack.engine, 10)
    delivered = pipeline_stack.status_events()

    # When their status events arrive as they were sent, not at all, or duplicated, newest
    # first, with one for a query crq never started
    if events == "delivered":
        assert len(delivered) == 3
        for event in delivered:
            functions.track(event)
    elif events == "lost":
        assert delivered == []
    else:
        for event in [*reversed(delivered), *delivered, status_event("f" * 36)]:
            functions.track(event)
    # and the track schedule ticks
    functions.track(TICK)

    # Then each run ended as its query did, and was notified once
    messages = pipeline_stack.notifications(3, timeout=2)
    assert outcomes_of(messages) == OUTCOMES
    assert len(messages) == 3
    # And late copies of the events, and more ticks, change nothing
    for event in delivered:
        functions.track(event)
    functions.track(TICK)
    assert len(pipeline_stack.notifications(3, timeout=0.2)) == 3
    assert {item["notifyState"] for item in pipeline_stack.items()} == {"SENT"}


def test_an_event_ahead_of_the_query_changes_nothing(pipeline_stack: Any, functions: Any) -> None:
    # Given a running query, and a status event saying it succeeded when it has not
    started = functions.start(
        pipeline_stack.upload("specs/ahead.yaml", sql_spec("ahead", fault="hold"))
    )
    query_id = started["query_id"]
    wait_for(pipeline_stack.engine, query_id, frozenset({"STARTED"}))
    summary = functions.track(status_event(query_id, "SUCCESS"))
    # Then crq read the query, saw it running, and neither ended nor notified the run
    assert summary["ended"] == 0
    assert pipeline_stack.items()[0]["state"] == "RUNNING"
    assert pipeline_stack.notifications(0, timeout=0) == []
    # When it really ends, it is notified with how it really ended
    release(pipeline_stack.engine, query_id)
    settle(pipeline_stack, functions)
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["event"] == "QUERY_SUCCEEDED"


@pytest.mark.parametrize("noticed_by", ["tick", "status event"])
def test_a_query_clean_rooms_forgot_is_reported_and_not_polled_again(
    pipeline_stack: Any, functions: Any, calls: CleanRoomsCalls, noticed_by: str
) -> None:
    # Given a running query that Clean Rooms then no longer knows
    started = functions.start(
        pipeline_stack.upload("specs/amnesia.yaml", sql_spec("amnesia", fault="hold"))
    )
    query_id = started["query_id"]
    forget(pipeline_stack.engine, query_id)
    # When the track looks at it
    if noticed_by == "tick":
        functions.track(TICK)
    else:
        functions.track(status_event(query_id, "FAILED"))
    # Then the run ends QUERY_FAILED with QUERY_NOT_FOUND, notified once
    [body] = bodies(pipeline_stack.notifications(1))
    assert (body["event"], body["error"]["code"]) == ("QUERY_FAILED", "QUERY_NOT_FOUND")
    assert query_id in body["error"]["message"] and body["query"]["id"] == query_id
    [item] = pipeline_stack.items()
    assert (item["state"], item["notifyState"]) == ("ENDED", "SENT") and "inFlight" not in item
    # And later tracks never ask Clean Rooms about it again
    calls.clear()
    for _ in range(3):
        functions.track(TICK)
    functions.track(status_event(query_id, "FAILED"))
    assert calls.calls == []
    assert len(pipeline_stack.notifications(1, timeout=0.2)) == 1
