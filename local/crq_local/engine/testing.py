"""Test controls and helpers for tests that drive the engine through boto3 beside moto.

The controls (crq's own tests and the benchmarks use them; the engine never imports this):

    wait_until_idle(engine, timeout) -> bool   # every query ended, every event sent
    release(engine, query_id=None)             # let `-- crq-fault: hold` queries finish
    forget(engine, query_id)                   # the id now answers ResourceNotFoundException
    throttle(engine, requests=N, seconds=T, operations=[...])   # ThrottlingException on demand

    with moto_server() as aws_url, make_server(engine) as server:
        # AWS_ENDPOINT_URL=aws_url for S3/EventBridge, AWS_ENDPOINT_URL_CLEANROOMS=server.url

`Harness` bundles an engine with the clients a test uses, a results bucket and an SQS queue
that receives every aws.cleanrooms event through an EventBridge rule. The `EXAMPLE_*`
constants name the example collaboration's fixed ids.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow.parquet as pq
import yaml
from botocore.config import Config
from moto import mock_aws
from moto.server import ThreadedMotoServer

from .aws import new_session
from .config import parse_config
from .engine import Engine
from .inprocess import installed
from .queries import ENDED
from .server import make_server
from .timings import Timings


def wait_until_idle(engine: Engine, timeout: float = 10.0) -> bool:
    """Wait until every query has ended and its events are sent. False on timeout."""
    return engine.runner.wait_until_idle(timeout)


def release(engine: Engine, query_id: str | None = None) -> None:
    """Let held queries (`-- crq-fault: hold`) finish: one, or all when no id is given."""
    engine.runner.release(query_id)


def forget(engine: Engine, query_id: str) -> None:
    """Drop a query, as if Clean Rooms no longer knew it: its id now answers
    ResourceNotFoundException, and it sends no more events."""
    engine.runner.forget(query_id)


def throttle(
    engine: Engine, requests: int = 0, seconds: float = 0.0, operations: list[str] | None = None
) -> None:
    """Answer ThrottlingException to the next `requests` requests and/or for `seconds`."""
    engine.throttling.add(requests, seconds, operations)


@contextmanager
def moto_server(host: str = "127.0.0.1") -> Iterator[str]:
    """A moto server on a free loopback port, for the life of the block; yields its URL."""
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    try:
        bound_host, port = server.get_host_and_port()
        yield f"http://{bound_host}:{port}"
    finally:
        server.stop()


# Where the example lives in a source checkout (the engine is never installed elsewhere).
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "collaboration.yaml"
CALLER = "111111111111"
RETAILER = "222222222222"
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
RETAILER_MEMBERSHIP = "0b7d5e21-93c4-4f0a-8e6d-5c1a2f9b4e38"
COLLABORATION = "5a3e8c1d-7b2f-4d69-8e0a-1f4c6b9d2e75"
OVERLAP_ARN = (
    f"arn:aws:cleanrooms:us-east-1:{CALLER}:membership/{MEMBERSHIP}"
    "/analysistemplate/3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64"
)
CONVERSION_ARN = (
    f"arn:aws:cleanrooms:us-east-1:{CALLER}:membership/{MEMBERSHIP}"
    "/analysistemplate/8c1f5e2a-4b7d-4a93-9e6f-2d0b7a5c3e18"
)
# Errors must reach the test as they are: no client-side retries.
NO_RETRIES = Config(retries={"total_max_attempts": 1})


def example_world() -> dict[str, Any]:
    """The example collaboration file as a dict, for tests to adjust."""
    return yaml.safe_load(EXAMPLE.read_text())


@dataclass
class Harness:
    mode: str
    engine: Engine
    session: Any
    cleanrooms: Any
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    members_dir: Path
    _events: list[dict[str, Any]] = field(default_factory=list)

    def client(self, **config: Any) -> Any:
        """Another cleanrooms client, e.g. parameter_validation=False to send what botocore
        itself would refuse, as another SDK might."""
        return self.session.client("cleanrooms", config=NO_RETRIES.merge(Config(**config)))

    def s3_output(self, **extra: Any) -> dict[str, Any]:
        s3 = {"bucket": self.bucket, "resultFormat": "CSV", **extra}
        return {"outputConfiguration": {"s3": s3}}

    def start(
        self,
        sql: str | None = None,
        *,
        template: str | None = None,
        parameters: dict[str, str] | None = None,
        output: dict[str, Any] | None = None,
        membership: str = MEMBERSHIP,
        **extra: Any,
    ) -> str:
        sql_parameters: dict[str, Any] = (
            {"queryString": sql} if sql is not None else {"analysisTemplateArn": template}
        )
        if parameters is not None:
            sql_parameters["parameters"] = parameters
        response = self.cleanrooms.start_protected_query(
            type="SQL",
            membershipIdentifier=membership,
            sqlParameters=sql_parameters,
            resultConfiguration=output or self.s3_output(),
            **extra,
        )
        query_id: str = response["protectedQuery"]["id"]
        return query_id

    def get(self, query_id: str, membership: str = MEMBERSHIP) -> dict[str, Any]:
        response = self.cleanrooms.get_protected_query(
            membershipIdentifier=membership, protectedQueryIdentifier=query_id
        )
        query: dict[str, Any] = response["protectedQuery"]
        return query

    def wait_for(
        self, query_id: str, statuses: Iterable[str] = ENDED, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll GetProtectedQuery until this one query reaches one of `statuses` (by default:
        has ended), or the timeout passes; other queries may run on."""
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while True:
            query = self.get(query_id)
            if query["status"] in wanted or time.monotonic() > deadline:
                return query
            time.sleep(0.02)

    def finish(self, query_id: str) -> dict[str, Any]:
        """Wait for the engine to go idle, then read the query as a client would."""
        assert wait_until_idle(self.engine, 10), "the engine did not go idle"
        return self.get(query_id)

    def keys(self, prefix: str = "") -> list[str]:
        response = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in response.get("Contents", []))

    def csv_rows(self, key: str) -> list[dict[str, str]]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
        return list(csv.DictReader(io.StringIO(body)))

    def parquet_rows(self, key: str) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(body)).to_pylist()
        return rows

    def events(self, expected: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Every aws.cleanrooms event received so far (waiting for at least `expected`)."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            for message in messages:
                self._events.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
            if not messages and (len(self._events) >= expected or time.monotonic() > deadline):
                return list(self._events)

    def statuses(self, query_id: str) -> list[str]:
        return [
            e["detail"]["status"]
            for e in self.events()
            if e["detail"]["protectedQueryId"] == query_id
        ]


def prepare_aws(session: Any, harness_suffix: str) -> tuple[Any, Any, Any, str, str]:
    """S3, SQS and EventBridge clients, a results bucket and an events queue fed by a rule."""
    s3, sqs, events = session.client("s3"), session.client("sqs"), session.client("events")
    bucket = f"results-{harness_suffix}"
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=f"events-{harness_suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule = f"cleanrooms-{harness_suffix}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["aws.cleanrooms"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return s3, sqs, events, bucket, queue_url


MakeHarness = Callable[..., Harness]  # the type of the tests' `make_harness` fixture


class Env(Protocol):
    """What `open_harness` needs to set the environment (pytest's MonkeyPatch has it)."""

    def setenv(self, name: str, value: str) -> None: ...
    def delenv(self, name: str, raising: bool = True) -> None: ...


def open_harness(
    stack: ExitStack,
    mode: str,
    env: Env,
    *,
    aws_url: Callable[[], str],
    members_dir: Path,
    world: dict[str, Any] | None = None,
    timings: Timings | None = None,
) -> Harness:
    """Start an engine for `world` (the example by default) in `mode` ("inprocess": under
    mock_aws, installed in-process; "http": its server, beside the moto server at
    `aws_url()`), with clients, a bucket and an events queue; `stack` undoes it all."""
    config = parse_config(copy.deepcopy(world or example_world()), source=EXAMPLE)
    engine = Engine(config, timings=timings or Timings.fast(), members_dir=members_dir)
    if mode == "inprocess":
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.delenv("AWS_ENDPOINT_URL_CLEANROOMS", raising=False)
        stack.enter_context(mock_aws())
        stack.enter_context(installed(engine))
    else:
        env.setenv("AWS_ENDPOINT_URL", aws_url())
        server = stack.enter_context(make_server(engine, "127.0.0.1", 0))
        env.setenv("AWS_ENDPOINT_URL_CLEANROOMS", server.url)
    # Unwound first: no query thread outlives the mock or the server.
    stack.callback(engine.shutdown)
    session = new_session()
    s3, sqs, _, bucket, queue_url = prepare_aws(session, uuid.uuid4().hex[:12])
    cleanrooms = session.client("cleanrooms", config=NO_RETRIES)
    return Harness(mode, engine, session, cleanrooms, s3, sqs, bucket, queue_url, members_dir)
