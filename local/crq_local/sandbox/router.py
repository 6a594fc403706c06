"""EventBridge -> Lambda, with SQS in Lambda's place: the template's rules target one queue per
function, and one thread per queue invokes the function for each event it holds.

Lambda's asynchronous invoke retries a failed invocation (`EventInvokeConfig`
`MaximumRetryAttempts`, 2 by default) and then sends an invocation record to the function's
`OnFailure` destination. The router does the same, without Lambda's minutes of back-off: a
failed event becomes visible again after a second, and after its last attempt the record goes
to the destination queue (the stack's dead-letter queue) and the event leaves its queue.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from crq_local.sandbox.lambda_runtime import Invocation, LambdaRuntime

# Short, so stopping the sandbox never waits long for a poll to return.
POLL_WAIT_SECONDS = 1
RETRY_DELAY_SECONDS = 1


@dataclass(frozen=True)
class EventRoute:
    """An event routing rule: the queue a function's rules deliver to, and what happens when
    the function fails."""

    function: str  # logical id
    queue_url: str
    max_attempts: int = 3
    on_failure_queue_url: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One event handed to a function, as the sandbox's display reports it."""

    route: EventRoute
    event: dict[str, Any]
    invocation: Invocation
    attempt: int

    @property
    def gave_up(self) -> bool:
        return not self.invocation.ok and self.attempt >= self.route.max_attempts


def failure_record(delivery: Delivery, function_arn: str) -> dict[str, Any]:
    """The record Lambda sends to an OnFailure destination once retries are exhausted."""
    invocation = delivery.invocation
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": delivery.attempt,
        },
        "requestPayload": delivery.event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {
            "errorType": invocation.error_type,
            "errorMessage": invocation.error_message,
        },
    }


class EventRouter:
    """Polls each route's queue on its own thread; start() and stop() own the threads."""

    def __init__(
        self,
        sqs: Any,
        runtime: LambdaRuntime,
        routes: list[EventRoute],
        on_delivery: Callable[[Delivery], None],
        on_error: Callable[[str], None],
    ) -> None:
        self._sqs = sqs
        self._runtime = runtime
        self._routes = routes
        self._on_delivery = on_delivery
        self._on_error = on_error
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for route in self._routes:
            thread = threading.Thread(
                target=self._poll, args=(route,), name=f"router-{route.function}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self.request_stop()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _poll(self, route: EventRoute) -> None:
        while not self._stop.is_set():
            try:
                response = self._sqs.receive_message(
                    QueueUrl=route.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=POLL_WAIT_SECONDS,
                    AttributeNames=["ApproximateReceiveCount"],
                )
            except (BotoCoreError, ClientError) as exc:
                if self._stop.is_set():
                    return
                self._on_error(f"{route.function}: cannot poll its event queue: {exc}")
                self._stop.wait(RETRY_DELAY_SECONDS)
                continue
            for message in response.get("Messages", []):
                if self._stop.is_set():
                    return  # unprocessed events become visible again: nothing is lost
                try:
                    self._deliver(route, message)
                except (BotoCoreError, ClientError) as exc:
                    if not self._stop.is_set():
                        self._on_error(f"{route.function}: cannot settle an event: {exc}")

    def _deliver(self, route: EventRoute, message: dict[str, Any]) -> None:
        receipt = message["ReceiptHandle"]
        try:
            event = json.loads(message["Body"])
        except json.JSONDecodeError:
            # EventBridge only delivers JSON: this was put on the queue by hand.
            self._on_error(f"{route.function}: dropped an event that is not JSON")
            self._sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=receipt)
            return
        if isinstance(event, dict) and "detail-type" in event:
            # moto leaves `account` out of events put with PutEvents (the engine's status
            # events); EventBridge always sets it to the account of the bus.
            event.setdefault("account", self._runtime.function(route.function).account_id)
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        invocation = self._runtime.invoke(route.function, event)
        delivery = Delivery(route, event, invocation, attempt)
        if invocation.ok:
            self._sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=receipt)
        elif delivery.gave_up:
            if route.on_failure_queue_url:
                record = failure_record(delivery, self._runtime.function(route.function).arn)
                self._sqs.send_message(
                    QueueUrl=route.on_failure_queue_url, MessageBody=json.dumps(record)
                )
            self._sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=receipt)
        else:
            self._sqs.change_message_visibility(
                QueueUrl=route.queue_url,
                ReceiptHandle=receipt,
                VisibilityTimeout=RETRY_DELAY_SECONDS,
            )
        self._on_delivery(delivery)
