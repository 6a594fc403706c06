"""Fault injection for the reliability suite (issue 5), on top of tests/integration/conftest.py.

The stack's fixtures (`pipeline_stack`, `functions`, `log_records`) give the real handlers under
moto with the local engine; this module adds what the faults need:

- `Clock`: the functions' clock, moved forward to pass a grace period, a lease or a max runtime
  without waiting (the `clock` fixture hands it to both handlers).
- `CleanRoomsCalls`: every Clean Rooms call crq makes, and the error code it got back.
- `StartFaults`: answers crq's next StartProtectedQuery calls with an HTTP error of our choice,
  before the engine sees them (so no query is created), as Clean Rooms would send it.
- `ActiveQueries`: the most queries a membership had active in the engine at any moment.
- `LambdaAsync`: Lambda's asynchronous invocation of a function (EventBridge and Scheduler
  invoke crq's functions that way): retries per the template's EventInvokeConfig, then the
  OnFailure destination, the stack's EventsDeadLetterQueue.

Each moto DynamoDB request is atomic, as the service's are, so tests running invocations in
threads race crq, not moto: `pipeline_stack` enters crq_local.sandbox.moto_dynamodb for every
integration test.

Names are unique to this folder: pytest puts it on sys.path, next to other test folders.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import EndpointConnectionError

from crq_local import stack
from crq_local.engine.testing import wait_until_idle

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"  # the example collaboration's caller
CHANNELS = (
    "SELECT channel, COUNT(*) AS impressions FROM impressions GROUP BY channel ORDER BY channel"
)
TICK: dict[str, Any] = {"source": "crq.track"}  # the track schedule's input
EVENTS = Path(__file__).resolve().parents[3] / "events"
ACTIVE = frozenset({"SUBMITTED", "STARTED"})  # what Clean Rooms' concurrency quota counts
ENDED = frozenset({"SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT"})


def sql_spec(name: str, sql: str = CHANNELS, *, fault: str = "", extra: str = "") -> str:
    """A spec running `sql` (with an engine fault hint line, if any) in the example membership."""
    query = sql + (f"\n-- crq-fault: {fault}" if fault else "")
    return (
        f"name: {name}\n"
        f"membershipIdentifier: {MEMBERSHIP}\n"
        "sqlParameters:\n"
        f"  queryString: {json.dumps(query)}\n"
        "resultConfiguration:\n"
        "  outputConfiguration:\n"
        f"    s3: {{resultFormat: CSV, bucket: crq-results, keyPrefix: '{name}/'}}\n" + extra
    )


def sample_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (tests change only the fields they need)."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


STATUS_DETAIL_TYPES = {
    "SUCCESS": "Protected Query Succeeded",
    "FAILED": "Protected Query Failed",
    "CANCELLED": "Protected Query Cancelled",
    "TIMED_OUT": "Protected Query Timed Out",
}


def status_event(query_id: str, status: str = "SUCCESS") -> dict[str, Any]:
    """An aws.cleanrooms status event for a query, shaped like events/track's sample."""
    event = sample_event("track/cleanrooms-query-succeeded.json")
    event["detail-type"] = STATUS_DETAIL_TYPES[status]
    event["detail"].update(
        {"membershipId": MEMBERSHIP, "protectedQueryId": query_id, "status": status}
    )
    return event


def settle(stack_: Any, functions: Any, timeout: float = 10.0) -> None:
    """Let the engine finish every query, then hand its status events to the track function."""
    assert wait_until_idle(stack_.engine, timeout), "the engine did not go idle"
    for event in stack_.status_events():
        functions.track(event)


def wait_for(
    engine: Any, query_id: str, statuses: frozenset[str] = ENDED, timeout: float = 10.0
) -> str:
    """Poll the engine until the query is in one of `statuses`; its status. (Through the
    engine's own front door: recorders on crq's session count only crq's calls.)"""
    deadline = time.monotonic() + timeout
    while True:
        query = engine.handle(
            "GetProtectedQuery",
            {"membershipIdentifier": MEMBERSHIP, "protectedQueryIdentifier": query_id},
        )
        status = str(query["protectedQuery"]["status"])
        if status in statuses or time.monotonic() > deadline:
            assert status in statuses, f"query {query_id} is still {status}"
            return status
        time.sleep(0.005)


def ledger_rows(stack_: Any) -> dict[str, dict[str, Any]]:
    """The ledger's items by spec name."""
    return {item["specName"]: item for item in stack_.items()}


def bodies(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["body"] for m in messages]


@dataclass
class Clock:
    """The functions' clock: real time plus an offset the test moves forward. Real time keeps it
    consistent with the engine's createTime."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def crq_session() -> Any:
    """boto3's default session, the one crq's adapters build their clients from."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def crq_settings() -> Any:
    """The functions' Settings, as the track function built them for this test."""
    from handlers import track

    return track.collaborators().settings


@dataclass
class CleanRoomsCalls:
    """Every Clean Rooms call made through crq's session: (operation, error code or None)."""

    calls: list[tuple[str, str | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> CleanRoomsCalls:
        crq_session().events.register("after-call.cleanrooms", self._after)
        return self

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        error = (parsed.get("Error") or {}).get("Code")
        with self._lock:
            self.calls.append((model.name, error))

    def count(self, operation: str, error: str | None = "any") -> int:
        with self._lock:
            return sum(1 for op, code in self.calls if op == operation and error in ("any", code))

    def errors(self, operation: str) -> list[str]:
        with self._lock:
            return [code for op, code in self.calls if op == operation and code]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


class _Body:
    """What AWSResponse reads a body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


# The host an injected answer's request is pointed at, so that neither the engine nor moto (whose
# before-send handlers botocore calls too) acts on a request that was answered here.
_INJECTED_HOST = "answered-by-a-fault.invalid"


@dataclass
class StartFaults:
    """Answers crq's next StartProtectedQuery calls with an error, as Clean Rooms would send it
    (REST-JSON: `x-amzn-ErrorType` header, JSON body); the engine never sees those calls."""

    _planned: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    answered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> StartFaults:
        # More specific than the engine's `before-send.cleanrooms`, so botocore asks this first.
        crq_session().events.register_first(
            "before-send.cleanrooms.StartProtectedQuery", self._answer
        )
        return self

    def fail(self, times: int, status: int, code: str, **body: Any) -> None:
        with self._lock:
            self._planned.extend([(status, code, body)] * times)

    def server_errors(self, times: int) -> None:
        self.fail(times, 500, "InternalServerException", message="Internal failure (injected)")

    def iam_delay(self, times: int) -> None:
        self.fail(
            times,
            400,
            "ValidationException",
            message="The service role cannot be assumed yet (injected)",
            reason="IAM_SYNCHRONIZATION_DELAY",
        )

    def _answer(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        with self._lock:
            if not self._planned:
                return None
            status, code, body = self._planned.pop(0)
            self.answered += 1
        request.url = request.url.replace(request.url.split("/")[2], _INJECTED_HOST, 1)
        headers = HTTPHeaders()
        headers["x-amzn-ErrorType"] = code
        headers["Content-Type"] = "application/json"
        payload = json.dumps({"message": code, **body}).encode()
        return AWSResponse(request.url, status, headers, _Body(payload))


@dataclass
class ActiveQueries:
    """The most queries of one membership the engine had active (SUBMITTED or STARTED) at once.

    A query becomes active only when it is started, so sampling right after each
    StartProtectedQuery answer catches every peak; `sample()` adds a point at any other time.
    """

    engine: Any
    membership_id: str = MEMBERSHIP
    peak: int = 0
    samples: list[int] = field(default_factory=list)

    def install(self) -> ActiveQueries:
        crq_session().events.register(
            "after-call.cleanrooms.StartProtectedQuery", lambda **_: self.sample()
        )
        return self

    def now(self) -> int:
        # The engine's own front door: the same answer any Clean Rooms client would get.
        page = self.engine.handle(
            "ListProtectedQueries", {"membershipIdentifier": self.membership_id, "maxResults": 100}
        )
        return sum(1 for q in page["protectedQueries"] if q["status"] in ACTIVE)

    def sample(self) -> int:
        active = self.now()
        self.samples.append(active)
        self.peak = max(self.peak, active)
        return active


@dataclass
class LambdaAsync:
    """Lambda's asynchronous invocation: the first attempt, then up to `retries` more while the
    function fails (template: EventInvokeConfig.MaximumRetryAttempts), then an invocation record
    on the OnFailure destination (the stack's EventsDeadLetterQueue)."""

    function: Callable[[dict[str, Any]], dict[str, Any]]
    function_arn: str
    retries: int
    dead_letter_url: str
    attempts: int = 0
    errors: list[BaseException] = field(default_factory=list)

    @classmethod
    def of(cls, function: Callable[..., Any], logical_id: str, sqs: Any) -> LambdaAsync:
        template = stack.load_template()
        invoke = stack.function_property(template, logical_id, "EventInvokeConfig")
        on_failure = invoke["DestinationConfig"]["OnFailure"]["Destination"]
        assert on_failure == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
        url = sqs.create_queue(QueueName="EventsDeadLetterQueue")["QueueUrl"]
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:crq-test-{logical_id}"
        return cls(function, arn, int(invoke["MaximumRetryAttempts"]), url)

    def invoke(self, event: dict[str, Any], between: Callable[[], None] | None = None) -> bool:
        """Deliver `event` as Lambda would; True if an attempt succeeded. `between` runs before
        each retry (time passing)."""
        for attempt in range(1 + self.retries):
            if attempt and between is not None:
                between()
            self.attempts += 1
            try:
                self.function(event)
            except Exception as exc:  # what Lambda counts as a function error
                self.errors.append(exc)
                continue
            return True
        boto3.client("sqs").send_message(
            QueueUrl=self.dead_letter_url,
            MessageBody=json.dumps(
                {
                    "requestContext": {
                        "functionArn": self.function_arn,
                        "condition": "RetriesExhausted",
                        "approximateInvokeCount": 1 + self.retries,
                    },
                    "requestPayload": event,
                    "responseContext": {"functionError": "Unhandled"},
                    "responsePayload": {"errorType": type(self.errors[-1]).__name__},
                }
            ),
        )
        return False

    def dead_letters(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.dead_letter_url, ReceiptHandle=message["ReceiptHandle"]
                )


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
