"""Guarantee 3: one notification per ended run.

The scheduled track and the status-event path may see the same ended run at the same moment; a
conditional claim in the ledger lets one of them publish. A publish that fails, or a function
that stops between publishing and recording it, is published again by a later track once the
claim's lease has passed, with the same body and `notificationId` (the documented duplicate).

Already proven in tests/integration/pipeline/test_pipeline_flow.py: duplicated status events
(`test_duplicate_deliveries_start_one_query_and_notify_once`).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from reliability_support import TICK, Clock, bodies, crq_session, sql_spec

from crq import delivery
from crq.adapters.dynamodb import DynamoLedger
from crq.ledger import NotifyState, Run
from crq_local.engine.testing import wait_until_idle

TRACKERS = 2


def status_event_of(stack_: Any) -> dict[str, Any]:
    [event] = stack_.status_events()  # the template's rule passes the terminal one only
    return event


def ended_unnotified(functions: Any, clock: Clock) -> None:
    """A run whose end is recorded, and whose notification is not published: the function
    stopped right after recording the end (which claims the notification in the same write),
    and the claim's lease has passed."""
    original = delivery.publish_claimed
    stop = [RuntimeError("the function stopped (injected)")]

    def publish_claimed(run: Run, pipeline: Any) -> Run:
        if stop:
            raise stop.pop()
        return original(run, pipeline)

    # The lifecycle holds its own reference to `publish_claimed`.
    from crq import lifecycle

    with pytest.MonkeyPatch.context() as patch:
        for module in (delivery, lifecycle):
            patch.setattr(module, "publish_claimed", publish_claimed)
        with pytest.raises(Exception, match="RuntimeError"):
            functions.track(TICK)
    clock.advance(minutes=3)


def trackers_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both track invocations read the runs in flight before either changes anything: each sees
    the same run, so both try to end it and to notify it (the race, made certain). The tick reads
    the InFlight index; the status event reads its query's run (the ByQuery index)."""
    meeting = threading.Barrier(TRACKERS, timeout=10)
    first_reads = threading.Semaphore(TRACKERS)

    def meet_after(original: Any) -> Any:
        def read(self: DynamoLedger, *args: Any) -> Any:
            found = original(self, *args)
            if first_reads.acquire(blocking=False):
                meeting.wait()
            return found

        return read

    for name in ("in_flight", "find_by_query"):
        monkeypatch.setattr(DynamoLedger, name, meet_after(getattr(DynamoLedger, name)))


@pytest.mark.parametrize("both_see", ["a query that ended", "an end not yet notified"])
def test_the_tick_and_the_status_event_racing_publish_once(
    pipeline_stack: Any,
    functions: Any,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    both_see: str,
) -> None:
    # Given a run whose query has ended, and its status event on its way to the track function
    functions.start(pipeline_stack.upload("specs/raced.yaml", sql_spec("raced")))
    assert wait_until_idle(pipeline_stack.engine, 10)
    event = status_event_of(pipeline_stack)
    if both_see == "an end not yet notified":
        ended_unnotified(functions, clock)
        [item] = pipeline_stack.items()
        assert (item["state"], item["notifyState"]) == ("ENDED", "CLAIMED")
    trackers_meet(monkeypatch)

    # When the scheduled tick and the status event are handled at the same moment
    with ThreadPoolExecutor(TRACKERS) as pool:
        done = [pool.submit(functions.track, TICK), pool.submit(functions.track, event)]
        results = [f.result(timeout=30) for f in done]

    # Then the subscriber gets one message, and the run is marked sent
    assert sum(r["notified"] for r in results) == 1, results
    [body] = bodies(pipeline_stack.notifications(1, timeout=0.5))
    assert body["event"] == "QUERY_SUCCEEDED"
    [item] = pipeline_stack.items()
    assert item["notifyState"] == "SENT" and "inFlight" not in item


class FailingPublish:
    """SNS Publish failing as the network would (after the SDK's own retries), `times` times;
    records the message each failed attempt carried."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.attempted: list[str] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        if self.left:
            self.left -= 1
            self.attempted.append(params["Message"])
            raise EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com/")


def test_a_failed_publish_is_published_again_after_the_lease_with_the_same_id(
    pipeline_stack: Any, functions: Any, clock: Clock
) -> None:
    failing = FailingPublish(times=1)
    crq_session().events.register("before-parameter-build.sns.Publish", failing)
    # Given a run that ends while SNS is unreachable
    functions.start(pipeline_stack.upload("specs/quiet-sns.yaml", sql_spec("quiet-sns")))
    assert wait_until_idle(pipeline_stack.engine, 10)
    functions.track(status_event_of(pipeline_stack))  # returns normally: the claim stays
    [attempt] = failing.attempted
    [item] = pipeline_stack.items()
    assert (item["state"], item["notifyState"]) == ("ENDED", NotifyState.CLAIMED.value)
    assert pipeline_stack.notifications(0, timeout=0) == []

    # When the track ticks while the claim's lease holds: nothing is published twice
    functions.track(TICK)
    assert pipeline_stack.notifications(0, timeout=0) == []
    # When it ticks after the lease: the same notification goes out, once
    clock.advance(minutes=3)
    assert functions.track(TICK)["notified"] == 1
    functions.track(TICK)
    [message] = pipeline_stack.notifications(1, timeout=0.5)
    # (the attempt carried SNS's per-protocol structure; subscribers of SQS get its JSON)
    assert message["body"] == json.loads(json.loads(attempt)["sqs"])
    assert message["body"]["notificationId"].endswith(":1:QUERY_SUCCEEDED")
    assert pipeline_stack.items()[0]["notifyState"] == "SENT"


def test_a_function_stopped_after_publishing_republishes_the_same_notification(
    pipeline_stack: Any, functions: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function that stops after SNS accepted the message, before recording it as sent
    original = DynamoLedger.save
    stopped: list[str] = []

    def save(self: DynamoLedger, run: Run) -> Run:
        if run.notify_state is NotifyState.SENT and not stopped:
            stopped.append(run.run_id)
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "Put")
        return original(self, run)

    monkeypatch.setattr(DynamoLedger, "save", save)
    functions.start(pipeline_stack.upload("specs/stopped.yaml", sql_spec("stopped")))
    assert wait_until_idle(pipeline_stack.engine, 10)
    with pytest.raises(ClientError):
        functions.track(status_event_of(pipeline_stack))
    [first] = pipeline_stack.notifications(1)

    # When tracks run inside the lease and after it
    functions.track(TICK)
    clock.advance(minutes=3)
    functions.track(TICK)
    functions.track(TICK)

    # Then the message went out again, identical (consumers drop it by notificationId), and
    # never a third time
    messages = pipeline_stack.notifications(2, timeout=0.5)
    assert len(messages) == 2
    assert messages[1]["body"] == first["body"]
    assert pipeline_stack.items()[0]["notifyState"] == "SENT"
