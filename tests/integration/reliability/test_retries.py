"""Guarantee 6: retries where they help.

A query that fails with a retryable error is started again, up to the spec's `maxAttempts`, and
only the final outcome is notified, saying which attempt it was; a non-retryable failure is not
retried. A start refused with IAM_SYNCHRONIZATION_DELAY (right after a deploy) waits and is tried
again, without using up an attempt, and is reported START_FAILED only after the stack's bound.

Already proven in tests/integration/pipeline/test_pipeline_flow.py: a transient failure, then
success on attempt 2 of 2 (`test_a_transient_failure_is_retried_and_the_notification_says_which_attempt`).
"""

from __future__ import annotations

from typing import Any

import pytest
from reliability_support import TICK, Clock, StartFaults, bodies, settle, sql_spec


@pytest.mark.parametrize(
    ("fault", "code", "queries"),
    [
        # Transient: each attempt fails the same way, until maxAttempts is used up.
        ("fail code=INTERNAL_ERROR retryable=true", "INTERNAL_ERROR", 3),
        # Not transient: a retry would fail again, and cost again.
        ("fail code=DATA_SOURCE_UNAVAILABLE retryable=false", "DATA_SOURCE_UNAVAILABLE", 1),
    ],
    ids=["transient", "permanent"],
)
def test_a_failed_query_is_retried_only_if_retryable_and_only_up_to_max_attempts(
    pipeline_stack: Any, functions: Any, fault: str, code: str, queries: int
) -> None:
    # Given a spec allowing three attempts, whose query fails every time
    spec = sql_spec("stubborn", fault=fault, extra="maxAttempts: 3\n")
    functions.start(pipeline_stack.upload("specs/stubborn.yaml", spec))
    # When its queries end and the track hears of them (a retry starts on the same pass)
    for _ in range(queries + 1):
        settle(pipeline_stack, functions)
        functions.track(TICK)
        if queries > 1 and len(pipeline_stack.engine.received) < queries:
            assert pipeline_stack.notifications(0, timeout=0) == [], "an attempt was notified"

    # Then the engine got `queries` identical queries, and the subscriber one message naming
    # the last attempt
    received = pipeline_stack.engine.received
    assert len(received) == queries
    assert all(r.request == received[0].request for r in received)
    [body] = bodies(pipeline_stack.notifications(1, timeout=0.5))
    assert (body["event"], body["error"]["code"]) == ("QUERY_FAILED", code)
    assert body["error"]["retryable"] is (queries > 1)
    assert (body["query"]["attempt"], body["query"]["maxAttempts"]) == (queries, 3)
    assert body["query"]["id"] == received[-1].query_id


def test_iam_propagation_delay_at_start_is_waited_out_not_rejected(
    pipeline_stack: Any, functions: Any, clock: Clock, start_faults: StartFaults
) -> None:
    # Given Clean Rooms refusing the next two starts: the service role is not assumable yet
    start_faults.iam_delay(2)
    event = pipeline_stack.upload("specs/fresh.yaml", sql_spec("fresh"))
    # When the spec is uploaded: the run waits in the queue, nobody is told anything
    assert functions.start(event)["detail"] == "IAM_SYNCHRONIZATION_DELAY"
    assert pipeline_stack.items()[0]["state"] == "QUEUED"
    # And the track leaves it alone for a while, then tries again (refused once more), and again
    functions.track(TICK)
    assert start_faults.answered == 1
    for _ in range(2):
        clock.advance(seconds=31)
        functions.track(TICK)
    assert start_faults.answered == 2
    # Then the query runs, on its first attempt, and is notified
    [received] = pipeline_stack.engine.received
    settle(pipeline_stack, functions)
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["event"] == "QUERY_SUCCEEDED" and body["query"]["id"] == received.query_id
    assert body["query"]["attempt"] == 1


def test_iam_propagation_delay_that_never_ends_is_reported_start_failed(
    pipeline_stack: Any, functions: Any, clock: Clock, start_faults: StartFaults
) -> None:
    start_faults.iam_delay(100)
    functions.start(pipeline_stack.upload("specs/never.yaml", sql_spec("never")))
    # The stack waits out 20 delays, 30 s apart (docs/reliability.md): about ten minutes
    for _ in range(25):
        clock.advance(seconds=31)
        functions.track(TICK)
    assert start_faults.answered == 21
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["event"] == "START_FAILED"
    assert body["error"]["code"] == "IAM_SYNCHRONIZATION_DELAY"
    assert pipeline_stack.engine.received == []
