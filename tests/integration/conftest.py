"""Shared integration fixtures: the stack's resources under moto, built from template.yaml.

`pipeline_stack` gives a test the deployed stack in miniature, built by the sandbox's own
builder (`crq_local.sandbox.stack_resources.create_stack`): the specs bucket (versioned), the
runs table (its definition read from the template's RunsTable, so the indexes the code queries
are the ones that get deployed), the topics, the dead-letter queue, the spec schedule group, the
EventBridge rules with the template's patterns (each sending its events to a queue standing for
its function; the track function's is `status_queue_url`, its CleanRoomsStatusChanged events),
plus a results bucket, an SQS queue subscribed to the notifications topic (a downstream
consumer), the local Clean Rooms engine installed in-process, and the functions' environment
resolved from the template.

`functions` invokes the real handlers in-process with a Lambda context, collaborators built
fresh for the test. No fixture here is autouse: other suites keep their own setup.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from crq_local import stack
from crq_local.engine import Engine, EngineConfig, Timings, load_config
from crq_local.engine.inprocess import installed
from crq_local.engine.testing import wait_until_idle
from crq_local.sandbox.moto_dynamodb import local_dynamodb
from crq_local.sandbox.stack_resources import (
    AwsClients,
    create_bucket,
    create_stack,
    physical_name,
)

# Powertools reads these when a handler module creates its Logger and Metrics, at import time:
# give them the template's values before any test imports a handler.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "crq")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "crq")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
COLLABORATION = ROOT / "examples" / "collaboration.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STACK_NAME = "crq-test"  # resources are named as the sandbox names them: crq-test-specs-bucket
SPECS_BUCKET = physical_name(STACK_NAME, "SpecsBucket")
RESULTS_BUCKET = "crq-results"  # not the stack's: the bucket specs write results to
TABLE = physical_name(STACK_NAME, "RunsTable")
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"  # the example collaboration's caller


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (tests change only the fields they need)."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@dataclass
class LambdaContext:
    """What Lambda passes as `context` (the fields Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    timeout_seconds: float = 30.0
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000)


@dataclass
class PipelineStack:
    engine: Engine
    s3: Any
    dynamodb: Any
    sqs: Any
    sns: Any
    environment: dict[str, str]
    notifications_queue_url: str
    status_queue_url: str
    specs_bucket: str = SPECS_BUCKET
    results_bucket: str = RESULTS_BUCKET
    table_name: str = TABLE
    _notifications: list[dict[str, Any]] = field(default_factory=list)

    def upload(self, key: str, body: str | bytes) -> dict[str, Any]:
        """Put a spec and return the Object Created event EventBridge would deliver for it."""
        data = body.encode() if isinstance(body, str) else body
        put = self.s3.put_object(Bucket=self.specs_bucket, Key=key, Body=data)
        event = load_event("start/s3-object-created.json")
        event["resources"] = [f"arn:aws:s3:::{self.specs_bucket}"]
        event["detail"]["bucket"]["name"] = self.specs_bucket
        event["detail"]["object"].update(
            {
                "key": key,
                "size": len(data),
                "etag": put["ETag"].strip('"'),
                "version-id": put["VersionId"],
            }
        )
        return event

    def notifications(self, expected: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Messages the subscribed queue received: {subject, attributes, body}."""
        deadline = time.monotonic() + timeout
        while len(self._notifications) < expected and time.monotonic() < deadline:
            for message in self._drain(self.notifications_queue_url):
                envelope = json.loads(message)
                self._notifications.append(
                    {
                        "subject": envelope.get("Subject"),
                        "attributes": {
                            name: attr["Value"]
                            for name, attr in envelope.get("MessageAttributes", {}).items()
                        },
                        "body": json.loads(envelope["Message"]),
                        "raw": message,
                    }
                )
            if len(self._notifications) < expected:
                time.sleep(0.02)
        # Anything more that arrived (a duplicate would show here)
        for message in self._drain(self.notifications_queue_url):
            envelope = json.loads(message)
            self._notifications.append(
                {
                    "subject": envelope.get("Subject"),
                    "attributes": {},
                    "body": json.loads(envelope["Message"]),
                    "raw": message,
                }
            )
        return list(self._notifications)

    def status_events(self) -> list[dict[str, Any]]:
        """The aws.cleanrooms events delivered so far (each one once)."""
        return [json.loads(message) for message in self._drain(self.status_queue_url)]

    def items(self) -> list[dict[str, Any]]:
        """The ledger table's runs, as DynamoDB holds them (name claims left out)."""
        return [item for item in self.records() if "state" in item]

    def records(self) -> list[dict[str, Any]]:
        """Every item of the ledger table: runs and spec name claims."""
        from boto3.dynamodb.types import TypeDeserializer

        plain = TypeDeserializer()
        items = self.dynamodb.scan(TableName=self.table_name)["Items"]
        return [{k: plain.deserialize(v) for k, v in item.items()} for item in items]

    def result_keys(self, prefix: str = "") -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.results_bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def _drain(self, queue_url: str) -> list[str]:
        bodies = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    return stack.load_template()


def _create_stack(engine: Engine) -> PipelineStack:
    """The template's resources, created by the sandbox's builder (one builder: the tests and
    the sandbox cannot drift from each other or from the template), plus the test's own parts."""
    clients = AwsClients.of(boto3.client)
    created = create_stack(
        _template(),
        clients,
        stack_name=STACK_NAME,
        region=REGION,
        account_id=ACCOUNT,
        parameters={"MembershipIds": [MEMBERSHIP], "ResultBucketNames": [RESULTS_BUCKET]},
    )
    create_bucket(clients.s3, RESULTS_BUCKET, REGION)

    # A downstream consumer: a queue subscribed to the notifications topic.
    sqs, sns = clients.sqs, clients.sns
    notifications = sqs.create_queue(QueueName="downstream-consumer")["QueueUrl"]
    sns.subscribe(
        TopicArn=created.topics["NotificationsTopic"],
        Protocol="sqs",
        Endpoint=_queue_arn(sqs, notifications),
    )
    # The queue standing for the track function: its only rule is CleanRoomsStatusChanged.
    [status] = [r.queue_url for r in created.routes if r.function == "TrackFunction"]

    # Both functions' variables (the start function has the schedule ones besides).
    environment = created.functions["StartFunction"].environment
    assert created.functions["TrackFunction"].environment.items() <= environment.items()
    return PipelineStack(
        engine=engine,
        s3=clients.s3,
        dynamodb=clients.dynamodb,
        sqs=sqs,
        sns=sns,
        environment=dict(environment),
        notifications_queue_url=notifications,
        status_queue_url=status,
        specs_bucket=created.buckets["SpecsBucket"],
        table_name=created.tables["RunsTable"],
    )


def _queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


@pytest.fixture
def collaboration() -> EngineConfig:
    """The engine's world; a test module overrides this fixture to bring its own."""
    return load_config(COLLABORATION)


@pytest.fixture
def pipeline_stack(
    monkeypatch: pytest.MonkeyPatch, collaboration: EngineConfig
) -> Iterator[PipelineStack]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLEANROOMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    engine = Engine(collaboration, timings=Timings.fast())
    try:
        with mock_aws(), installed(engine), local_dynamodb():
            built = _create_stack(engine)
            for name, value in built.environment.items():
                monkeypatch.setenv(name, value)
            yield built
            wait_until_idle(engine, 5)
    finally:
        engine.shutdown()


Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Functions:
    """The stack's two functions, invoked in-process as Lambda would."""

    start: Invoke
    track: Invoke


@pytest.fixture
def functions(pipeline_stack: PipelineStack) -> Iterator[Functions]:
    from handlers import start, track

    start.collaborators.cache_clear()
    track.collaborators.cache_clear()

    def invoke_start(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = start.handler(event, LambdaContext("crq-test-StartFunction"))  # type: ignore[arg-type]
        return result

    def invoke_track(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = track.handler(event, LambdaContext("crq-test-TrackFunction"))  # type: ignore[arg-type]
        return result

    try:
        yield Functions(invoke_start, invoke_track)
    finally:
        start.collaborators.cache_clear()
        track.collaborators.cache_clear()


class RecordsEverything(logging.Handler):
    """Keeps every log record with all its fields (extra keys included), to search them."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in self.records)


@pytest.fixture
def log_records() -> Iterator[RecordsEverything]:
    """Every record logged by crq (its loggers do not propagate to the root logger)."""
    handler = RecordsEverything()
    loggers = [logging.getLogger(), logging.getLogger("crq")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
