"""Guarantee 8: poison never loops.

Lambda invokes crq's functions asynchronously (EventBridge rules, Scheduler), retries a failed
invocation a bounded number of times (template: EventInvokeConfig), then sends the event to the
stack's EventsDeadLetterQueue, which has an alarm. An event that keeps failing before its run is
recorded ends there, and can be redriven once the cause is fixed. Once the run is recorded, the
ledger carries it: a start that keeps failing at Clean Rooms fails its invocation (visible),
leaves the run for the tracker to reconcile, is tried again at most a bounded number of times,
and then ends START_FAILED, reported: never a second query, never a loop.

The template side (each event source's bounded RetryPolicy, DeadLetterConfig and OnFailure
destination to EventsDeadLetterQueue, the alarm on that queue) is proven in
tests/integration/test_template.py
(`test_every_event_source_retries_a_bounded_number_of_times_then_dead_letters`,
`test_dead_letters_and_errors_raise_alarms`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from reliability_support import (
    TICK,
    Clock,
    LambdaAsync,
    StartFaults,
    bodies,
    crq_session,
    crq_settings,
    settle,
    sql_spec,
)


class SpecsBucketDown:
    """S3 answering GetObject with 503s, past the SDK's own retries."""

    def __init__(self) -> None:
        self.down = True

    def __call__(self, **_: Any) -> None:
        if self.down:
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "injected outage"}},
                "GetObject",
            )


def test_an_event_that_cannot_be_parsed_is_dead_lettered_after_bounded_retries(
    pipeline_stack: Any, functions: Any
) -> None:
    lambda_ = LambdaAsync.of(functions.start, "StartFunction", pipeline_stack.sqs)
    # Given an Object Created event missing its object (nothing crq can act on)
    event = pipeline_stack.upload("specs/x.yaml", "name: x\n")
    del event["detail"]["object"]
    # When Lambda delivers it
    assert not lambda_.invoke(event)
    # Then every attempt failed, the retries stopped at the template's bound, and the event
    # waits in the dead-letter queue, untouched; nothing else happened
    assert lambda_.attempts == 1 + lambda_.retries <= 3
    [letter] = lambda_.dead_letters()
    assert letter["requestPayload"] == event
    assert pipeline_stack.items() == [] and pipeline_stack.engine.received == []
    assert pipeline_stack.notifications(0, timeout=0) == []


def test_an_upload_failing_on_an_outage_is_dead_lettered_and_redriven_once_fixed(
    pipeline_stack: Any, functions: Any
) -> None:
    outage = SpecsBucketDown()
    crq_session().events.register("before-call.s3.GetObject", outage)
    lambda_ = LambdaAsync.of(functions.start, "StartFunction", pipeline_stack.sqs)
    # Given an upload whose spec cannot be read while S3 is down
    event = pipeline_stack.upload("specs/outage.yaml", sql_spec("outage"))
    # When Lambda delivers it: every attempt fails, then the dead-letter queue has it
    assert not lambda_.invoke(event)
    assert all(isinstance(e, ClientError) for e in lambda_.errors)
    [letter] = lambda_.dead_letters()
    assert pipeline_stack.items() == [] and pipeline_stack.engine.received == []
    # When S3 is back and the operator redrives the event (docs/reliability.md)
    outage.down = False
    assert lambda_.invoke(letter["requestPayload"])
    # Then the spec runs once and is notified
    settle(pipeline_stack, functions)
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["event"] == "QUERY_SUCCEEDED"
    assert len(pipeline_stack.engine.received) == 1


def test_a_start_clean_rooms_keeps_failing_is_reconciled_then_reported_not_looped(
    pipeline_stack: Any, functions: Any, clock: Clock, start_faults: StartFaults
) -> None:
    lambda_ = LambdaAsync.of(functions.start, "StartFunction", pipeline_stack.sqs)
    # Given Clean Rooms answering every StartProtectedQuery with a 500
    start_faults.server_errors(100)
    event = pipeline_stack.upload("specs/unlucky.yaml", sql_spec("unlucky"))
    # When Lambda delivers the upload, retrying a minute later
    assert lambda_.invoke(event, between=lambda: clock.advance(minutes=1))
    # Then the first invocation failed, the retry found the run already started, and the
    # event needs no dead-lettering: the ledger holds the run, STARTING, for the tracker
    assert isinstance(lambda_.errors[0], ClientError) and lambda_.attempts == 2
    assert lambda_.dead_letters() == []
    assert start_faults.answered == 1
    assert pipeline_stack.items()[0]["state"] == "STARTING"

    # When the track ticks every minute: once per grace it finds no query, queues the run
    # again and retries the start (failing visibly), until its bound, then reports it
    failed_ticks = 0
    for _ in range(15):
        clock.advance(minutes=1)
        try:
            functions.track(TICK)
        except Exception:
            failed_ticks += 1
    settings = crq_settings()
    assert start_faults.answered == settings.max_unconfirmed_starts
    assert failed_ticks == settings.max_unconfirmed_starts - 1
    [body] = bodies(pipeline_stack.notifications(1))
    assert (body["event"], body["error"]["code"]) == ("START_FAILED", "START_NOT_CONFIRMED")
    assert f"tried {settings.max_unconfirmed_starts} times" in body["error"]["message"]
    # And nothing is tried again, no query was ever created
    for _ in range(3):
        clock.advance(minutes=1)
        functions.track(TICK)
    assert start_faults.answered == settings.max_unconfirmed_starts
    assert pipeline_stack.engine.received == []
    assert pipeline_stack.items()[0]["notifyState"] == "SENT"


@pytest.mark.parametrize("failures", [1, 2])
def test_a_start_clean_rooms_fails_for_a_while_runs_once_it_recovers(
    pipeline_stack: Any, functions: Any, clock: Clock, start_faults: StartFaults, failures: int
) -> None:
    start_faults.server_errors(failures)
    event = pipeline_stack.upload("specs/recovers.yaml", sql_spec("recovers"))
    with pytest.raises(ClientError):
        functions.start(event)
    for _ in range(6):
        clock.advance(minutes=1)
        with contextlib.suppress(Exception):  # a failing start fails the tick, visibly
            functions.track(TICK)
    settle(pipeline_stack, functions)
    [received] = pipeline_stack.engine.received
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["event"] == "QUERY_SUCCEEDED" and body["query"]["id"] == received.query_id
    assert body["query"]["attempt"] == 1
