"""The sandbox, in-process: resources built from template.yaml, events routed as in the stack.

The functions here are recorders standing in for the handlers (injected through
`resolve_handler`), so these tests see exactly what Lambda would pass: the event, the context,
the environment. The real handlers run in tests/e2e, where the sandbox is its own process.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console

from crq_local import stack
from crq_local.engine.timings import Timings
from crq_local.sandbox import Sandbox, SandboxOptions

ROOT = Path(__file__).resolve().parents[3]
COLLABORATION = ROOT / "examples" / "collaboration.yaml"
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
TEMPLATE = stack.load_template(stack.TEMPLATE_PATH)
WAIT_SECONDS = 20

pytestmark = pytest.mark.xdist_group("sandbox-in-process")


@dataclass
class Call:
    handler: str
    event: Any
    function_name: str
    remaining_ms: int
    env: dict[str, str]


@dataclass
class Recorder:
    """Handlers that record their calls; events naming `poison` fail, as a buggy handler."""

    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, path: str, environment: Mapping[str, str]) -> Callable[[Any, Any], Any]:
        # The function's environment is handed over at cold start, never put in os.environ.
        def handler(event: Any, context: Any) -> dict[str, str]:
            env = {k: v for k, v in environment.items() if k.startswith(("CRQ_", "POWERTOOLS_"))}
            env["AWS_LAMBDA_FUNCTION_NAME"] = environment.get("AWS_LAMBDA_FUNCTION_NAME", "")
            with self.lock:
                self.calls.append(
                    Call(
                        path,
                        event,
                        context.function_name,
                        context.get_remaining_time_in_millis(),
                        env,
                    )
                )
            if "poison" in json.dumps(event):
                raise RuntimeError("this handler cannot digest poison")
            return {"ok": "yes"}

        return handler

    def of(self, handler: str, where: Callable[[Any], bool] = lambda _: True) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.handler == handler and where(c.event)]

    def wait_for(self, handler: str, where: Callable[[Any], bool], count: int = 1) -> list[Call]:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            found = self.of(handler, where)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"{handler} got {len(self.of(handler, where))} of {count} events")


@dataclass
class Running:
    sandbox: Sandbox
    recorder: Recorder
    output: io.StringIO
    exports: dict[str, str]

    def client(self, service: str) -> Any:
        endpoint = self.exports[
            "AWS_ENDPOINT_URL_CLEANROOMS" if service == "cleanrooms" else "AWS_ENDPOINT_URL"
        ]
        return boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=self.exports["AWS_DEFAULT_REGION"],
        ).client(service, endpoint_url=endpoint)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    recorder = Recorder()
    output = io.StringIO()
    options = SandboxOptions(
        collaboration=COLLABORATION,
        port=0,
        engine_port=0,
        tick_seconds=0.5,
        timings=Timings.fast(),
        log_file=tmp_path_factory.mktemp("sandbox") / "handlers.log",
    )
    sandbox = Sandbox(options, Console(file=output, width=200), resolve_handler=recorder.resolve)
    exports = sandbox.start()
    try:
        yield Running(sandbox, recorder, output, dict(exports))
    finally:
        sandbox.stop()


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def is_s3_key(key: str) -> Callable[[Any], bool]:
    return lambda event: event.get("detail", {}).get("object", {}).get("key") == key


# ---- resources --------------------------------------------------------------------------------


def test_the_table_has_the_templates_keys_indexes_and_ttl(running: Running) -> None:
    dynamodb = running.client("dynamodb")
    table_name = running.exports["CRQ_TABLE_NAME"]
    expected = stack.table_definition(TEMPLATE, "RunsTable")

    table = dynamodb.describe_table(TableName=table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]

    assert table["KeySchema"] == expected["KeySchema"]
    indexes = {i["IndexName"]: i["KeySchema"] for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {i["IndexName"]: i["KeySchema"] for i in expected["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"InFlight", "InFlightByMembership", "ByQuery", "Recent"}
    assert ttl == {"AttributeName": "expiresAt", "TimeToLiveStatus": "ENABLED"}


def test_the_specs_bucket_is_versioned(running: Running) -> None:
    # That it sends Object Created to EventBridge shows in the upload tests below (moto does
    # not echo EventBridgeConfiguration back from GetBucketNotificationConfiguration).
    s3 = running.client("s3")

    versioning = s3.get_bucket_versioning(Bucket=running.exports["CRQ_SPECS_BUCKET"])

    assert versioning["Status"] == "Enabled"


def test_rules_carry_the_templates_patterns_resolved_with_sandbox_names(running: Running) -> None:
    events = running.client("events")
    resolver = stack.Resolver(
        TEMPLATE,
        parameters={"MembershipIds": [MEMBERSHIP]},
        refs={"SpecsBucket": running.exports["CRQ_SPECS_BUCKET"]},
    )
    rules = {r["Name"]: r for r in events.list_rules()["Rules"]}

    for rule in stack.event_rules(TEMPLATE):
        name = running.sandbox.stack.rules[rule.rule_logical_id]  # type: ignore[union-attr]
        assert json.loads(rules[name]["EventPattern"]) == resolver.event_pattern(rule)
        (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
        assert target["Arn"].startswith("arn:aws:sqs:")
    assert len(stack.event_rules(TEMPLATE)) == 3  # uploads, deletions, Clean Rooms events


def test_the_track_schedule_has_the_templates_input_and_target(running: Running) -> None:
    (schedule,) = [s for s in stack.schedules(TEMPLATE) if s.function == "TrackFunction"]

    created = running.client("scheduler").get_schedule(Name="crq-sandbox-track")

    assert created["ScheduleExpression"] == "rate(1 minute)"
    assert json.loads(created["Target"]["Input"]) == schedule.input == {"source": "crq.track"}
    assert created["Target"]["Arn"].endswith(":function:crq-sandbox-track")


def test_the_dead_letter_alarm_watches_the_dead_letter_queue(running: Running) -> None:
    alarms = running.client("cloudwatch").describe_alarms()["MetricAlarms"]
    queue_name = running.exports["CRQ_DEAD_LETTER_QUEUE_URL"].rsplit("/", 1)[1]

    (alarm,) = [a for a in alarms if a["AlarmName"].endswith("events-dead-letter-alarm")]

    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"


def test_functions_get_the_templates_handler_and_environment(running: Running) -> None:
    functions = running.sandbox.stack.functions  # type: ignore[union-attr]

    for logical_id in stack.function_ids(TEMPLATE):
        function = functions[logical_id]
        assert function.handler == stack.function_handler(TEMPLATE, logical_id)
        assert set(function.environment) == set(stack.function_environment(TEMPLATE, logical_id))
        assert function.environment["CRQ_TABLE_NAME"] == running.exports["CRQ_TABLE_NAME"]
        assert function.environment["CRQ_TOPIC_ARN"] == running.exports["CRQ_TOPIC_ARN"]
        assert function.environment["CRQ_SPECS_BUCKET"] == running.exports["CRQ_SPECS_BUCKET"]
        assert function.environment["CRQ_SPECS_PREFIX"] == "specs/"
        assert function.timeout_seconds == stack.function_property(TEMPLATE, logical_id, "Timeout")
        assert function.memory_mb == stack.function_property(TEMPLATE, logical_id, "MemorySize")


# ---- events -----------------------------------------------------------------------------------


def test_a_spec_upload_invokes_start_with_the_s3_event(running: Running) -> None:
    s3 = running.client("s3")
    bucket = running.exports["CRQ_SPECS_BUCKET"]

    s3.put_object(Bucket=bucket, Key="specs/wiring.yaml", Body=b"name: wiring\n")

    (call,) = running.recorder.wait_for("handlers.start.handler", is_s3_key("specs/wiring.yaml"))
    event = call.event
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert event["detail"]["bucket"]["name"] == bucket
    assert event["detail"]["object"]["version-id"]
    assert event["account"] == "111111111111"
    assert call.function_name == "crq-sandbox-start"
    assert 0 < call.remaining_ms <= 30_000
    assert call.env["CRQ_SPECS_BUCKET"] == bucket
    assert call.env["POWERTOOLS_SERVICE_NAME"] == "crq"
    assert call.env["AWS_LAMBDA_FUNCTION_NAME"] == "crq-sandbox-start"
    # The function's environment reaches its handler as a mapping, never the process's.
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


def test_uploads_the_templates_pattern_excludes_reach_nobody(running: Running) -> None:
    s3 = running.client("s3")
    bucket = running.exports["CRQ_SPECS_BUCKET"]
    s3.put_object(Bucket=bucket, Key="elsewhere/x.yaml", Body=b"x")
    s3.put_object(Bucket=bucket, Key="specs/after.json", Body=b"{}")

    running.recorder.wait_for("handlers.start.handler", is_s3_key("specs/after.json"))

    keys = {
        c.event["detail"]["object"]["key"] for c in running.recorder.of("handlers.start.handler")
    }
    assert "elsewhere/x.yaml" not in keys


def test_every_key_under_the_prefix_reaches_start_whatever_its_case(running: Running) -> None:
    # Wildcards are case-sensitive: the rule takes the prefix, the function judges the name.
    s3 = running.client("s3")
    bucket = running.exports["CRQ_SPECS_BUCKET"]
    for key in ("specs/upper.YAML", "specs/team-a/mixed.Json", "specs/notes.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        running.recorder.wait_for("handlers.start.handler", is_s3_key(key))


def test_the_engines_status_events_reach_track(running: Running) -> None:
    cleanrooms = running.client("cleanrooms")
    query = cleanrooms.start_protected_query(
        type="SQL",
        membershipIdentifier=MEMBERSHIP,
        sqlParameters={"queryString": "SELECT channel, COUNT(*) AS n FROM impressions GROUP BY 1"},
        resultConfiguration={
            "outputConfiguration": {
                "s3": {"resultFormat": "CSV", "bucket": running.exports["CRQ_RESULTS_BUCKET"]}
            }
        },
    )["protectedQuery"]

    def about_query(event: Any) -> bool:
        return event.get("detail", {}).get("protectedQueryId") == query["id"]

    (call,) = running.recorder.wait_for("handlers.track.handler", about_query)
    assert call.event["source"] == "aws.cleanrooms"
    # The template's rule takes the terminal events only (the event is a wake-up).
    assert call.event["detail-type"] == "Protected Query Succeeded"
    assert call.function_name == "crq-sandbox-track"


def test_the_track_schedule_ticks_until_disabled(running: Running) -> None:
    def is_tick(event: Any) -> bool:
        return event == {"source": "crq.track"}

    running.recorder.wait_for("handlers.track.handler", is_tick, count=2)
    scheduler = running.client("scheduler")
    schedule = scheduler.get_schedule(Name="crq-sandbox-track")
    scheduler.update_schedule(
        Name="crq-sandbox-track",
        ScheduleExpression=schedule["ScheduleExpression"],
        FlexibleTimeWindow=schedule["FlexibleTimeWindow"],
        Target=schedule["Target"],
        State="DISABLED",
    )
    [ticker] = running.sandbox.tickers
    try:
        # A pass that read the schedule before it was disabled may still fire: wait for it to
        # end (passes run one after another), then for three passes that read it disabled.
        after_disable = ticker.passes + 1
        wait_until(lambda: ticker.passes >= after_disable)
        ticks = len(running.recorder.of("handlers.track.handler", is_tick))
        wait_until(lambda: ticker.passes >= after_disable + 3)
        assert len(running.recorder.of("handlers.track.handler", is_tick)) == ticks
    finally:
        scheduler.update_schedule(
            Name="crq-sandbox-track",
            ScheduleExpression=schedule["ScheduleExpression"],
            FlexibleTimeWindow=schedule["FlexibleTimeWindow"],
            Target=schedule["Target"],
            State="ENABLED",
        )


def test_a_failing_event_is_retried_then_dead_lettered(running: Running) -> None:
    s3 = running.client("s3")
    sqs = running.client("sqs")

    s3.put_object(Bucket=running.exports["CRQ_SPECS_BUCKET"], Key="specs/poison.yaml", Body=b"x")

    # EventInvokeConfig: MaximumRetryAttempts 2, so three attempts in all.
    calls = running.recorder.wait_for("handlers.start.handler", is_s3_key("specs/poison.yaml"), 3)
    deadline = time.monotonic() + WAIT_SECONDS
    messages: list[dict[str, Any]] = []
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=running.exports["CRQ_DEAD_LETTER_QUEUE_URL"], WaitTimeSeconds=1
        ).get("Messages", [])
    assert len(messages) == 1
    record = json.loads(messages[0]["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(":function:crq-sandbox-start:$LATEST")
    assert record["requestPayload"]["detail"]["object"]["key"] == "specs/poison.yaml"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    time.sleep(1.5)  # no fourth attempt
    assert len(running.recorder.of("handlers.start.handler", is_s3_key("specs/poison.yaml"))) == 3
    assert len(calls) == 3
    assert "gave up, event sent to the dead-letter queue" in running.output.getvalue()


def test_notifications_on_the_topic_are_printed_by_the_consumer(running: Running) -> None:
    body = {
        "version": "1",
        "event": "QUERY_FAILED",
        "spec": {"name": "printed", "source": "s3://b/specs/printed.yaml"},
        "query": {"id": "q-printed", "status": "FAILED"},
        "error": {"code": "MALFORMED_QUERY", "message": "no such column"},
    }

    running.client("sns").publish(
        TopicArn=running.exports["CRQ_TOPIC_ARN"], Message=json.dumps(body), Subject="crq"
    )

    deadline = time.monotonic() + WAIT_SECONDS
    while "q-printed" not in running.output.getvalue() and time.monotonic() < deadline:
        time.sleep(0.1)
    (line,) = [text for text in running.output.getvalue().splitlines() if "q-printed" in text]
    assert line.split()[:2] == ["QUERY_FAILED", "printed"]
    assert "MALFORMED_QUERY: no such column" in line


# ---- lifecycle --------------------------------------------------------------------------------


def test_stop_frees_the_ports_and_restores_the_environment(tmp_path: Path) -> None:
    before = {
        k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "MOTO_ACCOUNT_ID")
    }
    threads_before = set(threading.enumerate())
    sandbox = Sandbox(
        SandboxOptions(
            collaboration=COLLABORATION,
            port=0,
            engine_port=0,
            tick_seconds=60,
            timings=Timings.fast(),
            log_file=tmp_path / "handlers.log",
        ),
        Console(file=io.StringIO()),
        resolve_handler=Recorder().resolve,
    )
    exports = sandbox.start()
    assert os.environ["AWS_ENDPOINT_URL"] == exports["AWS_ENDPOINT_URL"]
    ports = [
        int(exports[name].rsplit(":", 1)[1])
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLEANROOMS")
    ]

    sandbox.stop()

    for port in ports:
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.connect(("127.0.0.1", port))
    assert {k: os.environ.get(k) for k in before} == before
    workers = ("router-", "schedule-", "consumer", "moto-server", "crq-engine-http")
    started = set(threading.enumerate()) - threads_before
    assert not [t for t in started if t.name.startswith(workers)]
