"""Guarantee 1: one query per trigger.

A trigger is an S3 object version or one scheduled time of a schedule. However often and however
concurrently it is delivered, and whatever crashes between the start call and the ledger, the
engine receives one query for it and the subscriber one message.

Already proven in tests/integration/pipeline/test_pipeline_flow.py: the same upload delivered
twice in a row, a schedule firing twice in a row, and a lost StartProtectedQuery answer
(`test_duplicate_deliveries_start_one_query_and_notify_once`,
`test_a_schedule_runs_with_the_scheduled_time_rendered`,
`test_a_lost_start_response_does_not_start_a_second_query`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from reliability_support import TICK, Clock, bodies, settle, sql_spec

from crq.adapters.cleanrooms import CleanRoomsGateway
from crq.adapters.dynamodb import DynamoLedger
from crq.ledger import ActiveRun, Run, RunState

DELIVERIES = 4


def deliver_at_once(invoke: Callable[[dict[str, Any]], Any], event: dict[str, Any]) -> list[Any]:
    """The same event handed to DELIVERIES invocations running at the same time (as separate
    Lambda instances would): each gets its result or the exception it raised."""

    def one(_: int) -> Any:
        try:
            return invoke(event)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(DELIVERIES) as pool:
        return list(pool.map(one, range(DELIVERIES)))


@pytest.fixture
def lookups_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every invocation reads the ledger before any of them writes: each one sees no run yet,
    so all of them race to create it (the worst interleaving, made certain). The start path's
    last read before its conditional create is its membership's in-flight index."""
    meeting = threading.Barrier(DELIVERIES, timeout=10)
    first_reads = threading.Semaphore(DELIVERIES)  # later reads go straight through
    original = DynamoLedger.active_in_membership

    def active_in_membership(self: DynamoLedger, membership_id: str) -> list[ActiveRun]:
        found = original(self, membership_id)
        if first_reads.acquire(blocking=False):
            meeting.wait()
        return found

    monkeypatch.setattr(DynamoLedger, "active_in_membership", active_in_membership)


def test_an_upload_delivered_concurrently_starts_one_query(
    pipeline_stack: Any, functions: Any, lookups_meet: None
) -> None:
    # Given one upload whose Object Created event reaches four invocations at the same moment
    event = pipeline_stack.upload("specs/busy.yaml", sql_spec("busy"))
    results = deliver_at_once(functions.start, event)

    # Then every invocation returned normally, and exactly one of them started a query
    assert not [r for r in results if isinstance(r, BaseException)], results
    outcomes = sorted(r["outcome"] for r in results)
    assert outcomes == ["in_progress"] * (DELIVERIES - 1) + ["started"], outcomes
    [received] = pipeline_stack.engine.received
    [item] = pipeline_stack.items()
    assert item["queryId"] == received.query_id and item["attempt"] == 1

    # And once it ends, the subscriber hears about it once
    settle(pipeline_stack, functions)
    functions.track(TICK)
    [body] = bodies(pipeline_stack.notifications(1, timeout=0.5))
    assert body["event"] == "QUERY_SUCCEEDED" and body["query"]["id"] == received.query_id


def test_a_schedule_firing_concurrently_for_one_time_starts_one_query(
    pipeline_stack: Any, functions: Any, lookups_meet: None
) -> None:
    pipeline_stack.upload("specs/nightly.yaml", sql_spec("nightly"))
    fire = {
        "specKey": "specs/nightly.yaml",
        "scheduledTime": "2026-03-01T02:00:00Z",
        "scheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/crq-nightly",
        "executionId": "first",
    }
    # Given the schedule's invocation for 02:00 delivered four times at once
    results = deliver_at_once(functions.start, fire)
    assert sorted(r["outcome"] for r in results) == ["in_progress"] * 3 + ["started"]
    # And delivered again later, by another execution of the same scheduled time
    assert functions.start({**fire, "executionId": "second"})["outcome"] in (
        "in_progress",
        "ended",
    )
    # When the next scheduled time fires
    functions.start({**fire, "scheduledTime": "2026-03-02T02:00:00Z", "executionId": "third"})

    # Then one query per scheduled time, one message each
    assert len(pipeline_stack.engine.received) == 2
    settle(pipeline_stack, functions)
    functions.track(TICK)
    triggers = sorted(b["trigger"]["time"] for b in bodies(pipeline_stack.notifications(2, 0.5)))
    assert triggers == ["2026-03-01T02:00:00Z", "2026-03-02T02:00:00Z"]


def test_a_duplicate_that_read_the_ledger_before_the_first_wrote_does_not_reset_the_run(
    pipeline_stack: Any, functions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = pipeline_stack.upload("specs/late.yaml", sql_spec("late"))
    # Given a first delivery that started the query
    assert functions.start(event)["outcome"] == "started"
    # When a second delivery arrives whose ledger read happened before the first one's write
    # (it saw no run), so it records the run too
    original = DynamoLedger.get
    stale_reads = [None]

    def get(self: DynamoLedger, run_id: str) -> Run | None:
        return stale_reads.pop() if stale_reads else original(self, run_id)

    monkeypatch.setattr(DynamoLedger, "get", get)
    assert functions.start(event)["outcome"] == "in_progress"
    # Then it did not reset the run: no second query, the run keeps its query
    [received] = pipeline_stack.engine.received
    [item] = pipeline_stack.items()
    assert item["queryId"] == received.query_id


def test_a_duplicate_while_the_start_call_is_in_flight_waits_for_it(
    pipeline_stack: Any, functions: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a start call that is slow to reach Clean Rooms
    in_call, go_on = threading.Event(), threading.Event()
    original = CleanRoomsGateway.start_protected_query

    def slow_start(self: CleanRoomsGateway, request: Any) -> Any:
        in_call.set()
        assert go_on.wait(10)
        return original(self, request)

    monkeypatch.setattr(CleanRoomsGateway, "start_protected_query", slow_start)
    event = pipeline_stack.upload("specs/slow-call.yaml", sql_spec("slow-call"))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(functions.start, event)
        assert in_call.wait(10)
        # When a duplicate delivery arrives while the call is in flight (nothing listed yet)
        assert functions.start(event)["outcome"] == "in_progress"
        go_on.set()
        assert first.result()["outcome"] == "started"
    # Then the run keeps the query the call started, and nothing starts another one
    clock.advance(minutes=3)
    settle(pipeline_stack, functions)
    functions.track(TICK)
    [received] = pipeline_stack.engine.received
    [body] = bodies(pipeline_stack.notifications(1, timeout=0.5))
    assert body["query"]["id"] == received.query_id


@pytest.fixture
def running_write_fails_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ledger write STARTING -> RUNNING fails once: the query exists, its id is not recorded
    (DynamoDB failing, or the function crashing, right after StartProtectedQuery answered)."""
    failed: list[str] = []
    original = DynamoLedger.save

    def save(self: DynamoLedger, run: Run) -> Run:
        if run.state is RunState.RUNNING and not failed:
            failed.append(run.run_id)
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem"
            )
        return original(self, run)

    monkeypatch.setattr(DynamoLedger, "save", save)
    return failed


@pytest.mark.parametrize("reconciled_by", ["redelivered event", "track tick"])
def test_a_crash_after_the_start_call_returned_does_not_start_a_second_query(
    pipeline_stack: Any,
    functions: Any,
    clock: Clock,
    running_write_fails_once: list[str],
    reconciled_by: str,
) -> None:
    event = pipeline_stack.upload("specs/crash.yaml", sql_spec("crash"))
    # Given a start whose query was created but whose id never reached the ledger
    with pytest.raises(ClientError):
        functions.start(event)  # the invocation fails: Lambda will retry the event
    [query] = pipeline_stack.engine.received
    assert running_write_fails_once and pipeline_stack.items()[0]["state"] == "STARTING"

    # When Lambda retries the event a minute later (inside the grace): nothing is started
    clock.advance(minutes=1)
    assert functions.start(event)["outcome"] == "in_progress"
    assert len(pipeline_stack.engine.received) == 1

    # And once the grace has passed, the run is reconciled with the query that exists
    clock.advance(minutes=2)
    if reconciled_by == "redelivered event":
        functions.start(event)
    else:
        functions.track(TICK)
    [item] = pipeline_stack.items()
    assert item["state"] in ("RUNNING", "ENDED") and item["queryId"] == query.query_id

    # Then the run ends notified once, and the engine still holds one query
    settle(pipeline_stack, functions)
    functions.track(TICK)
    functions.track(TICK)
    [body] = bodies(pipeline_stack.notifications(1, timeout=0.5))
    assert (body["event"], body["query"]["id"]) == ("QUERY_SUCCEEDED", query.query_id)
    assert body["query"]["attempt"] == 1
    assert len(pipeline_stack.engine.received) == 1


def test_a_crash_before_the_start_call_starts_the_query_once_after_the_grace(
    pipeline_stack: Any, functions: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an invocation that dies after recording its intent, before calling Clean Rooms
    original = CleanRoomsGateway.start_protected_query
    crashes = [RuntimeError("the function stopped (injected)")]

    def start_protected_query(self: CleanRoomsGateway, request: Any) -> Any:
        if crashes:
            raise crashes.pop()
        return original(self, request)

    monkeypatch.setattr(CleanRoomsGateway, "start_protected_query", start_protected_query)
    event = pipeline_stack.upload("specs/early.yaml", sql_spec("early"))
    with pytest.raises(RuntimeError):
        functions.start(event)
    assert pipeline_stack.engine.received == []

    # When the track ticks inside the grace, it waits; after the grace, no query is found, so
    # the run is queued again and started, once
    functions.track(TICK)
    assert pipeline_stack.engine.received == []
    clock.advance(minutes=3)
    functions.track(TICK)
    functions.start(event)  # a late redelivery changes nothing
    [query] = pipeline_stack.engine.received
    settle(pipeline_stack, functions)
    functions.track(TICK)
    [body] = bodies(pipeline_stack.notifications(1, timeout=0.5))
    assert body["query"]["id"] == query.query_id and body["query"]["attempt"] == 1
