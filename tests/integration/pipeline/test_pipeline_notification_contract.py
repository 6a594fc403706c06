"""Notification contract 1.1 through the real handlers, moto's SNS and the in-process engine:
Clean Rooms' own retryable flag, the per-protocol message (text for e-mail, JSON for SQS, raw
delivery included), the run's cost, the template ARN and result prefix."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from crq.notification import notification_schema
from crq_local.engine.testing import wait_until_idle

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
CHANNELS = "SELECT channel, COUNT(*) AS impressions FROM impressions GROUP BY channel"
TICK = {"source": "crq.track"}


def sql_spec(sql: str, name: str) -> str:
    return (
        f"name: {name}\nmembershipIdentifier: {MEMBERSHIP}\n"
        f"sqlParameters:\n  queryString: {json.dumps(sql)}\n"
        "resultConfiguration:\n  outputConfiguration:\n"
        f"    s3: {{resultFormat: CSV, bucket: crq-results, keyPrefix: '{name}/{{{{ run_date }}}}/'}}\n"
    )


def settle(stack: Any, functions: Any) -> None:
    for _ in range(4):
        assert wait_until_idle(stack.engine, 10), "the engine did not go idle"
        for event in stack.status_events():
            functions.track(event)
        functions.track(TICK)


def test_clean_rooms_retryable_flag_is_read_from_the_raw_answer(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given a query whose first attempt fails with a code crq's transient list does not know,
    # but which Clean Rooms marks retry.retryable (the botocore model here drops that field)
    sql = CHANNELS + "\n-- crq-fault: fail code=WORKER_LOST retryable=true first=1"
    functions.start(pipeline_stack.upload("specs/flaky.yaml", sql_spec(sql, "flaky")))

    # When the track function follows it
    settle(pipeline_stack, functions)

    # Then crq trusted Clean Rooms' flag: attempt 2 ran and succeeded, and the run's cost
    # lists both attempts
    [message] = pipeline_stack.notifications(1)
    body = message["body"]
    assert body["event"] == "QUERY_SUCCEEDED", body
    assert body["query"]["attempt"] == 2 and len(pipeline_stack.engine.received) == 2
    attempts = body["cost"]["attempts"]
    assert [a["status"] for a in attempts] == ["FAILED", "SUCCESS"]
    assert [a["queryId"] for a in attempts] == [r.query_id for r in pipeline_stack.engine.received]
    assert body["cost"]["totalBilledUnits"] == round(
        sum(a.get("billedUnits", 0) for a in attempts), 6
    )
    assert body["runId"] and body["version"] == "1.1"
    assert body["query"]["resultPrefix"].startswith("s3://crq-results/flaky/")
    jsonschema.Draft202012Validator(notification_schema(strict=True)).validate(body)


def test_not_retryable_by_clean_rooms_ends_at_once(pipeline_stack: Any, functions: Any) -> None:
    sql = CHANNELS + "\n-- crq-fault: fail code=INTERNAL_ERROR retryable=false"
    functions.start(pipeline_stack.upload("specs/final.yaml", sql_spec(sql, "final")))
    settle(pipeline_stack, functions)
    [message] = pipeline_stack.notifications(1)
    # INTERNAL_ERROR is on crq's transient list, but Clean Rooms' own flag wins
    assert message["body"]["event"] == "QUERY_FAILED"
    assert message["body"]["error"]["retryable"] is False
    assert len(pipeline_stack.engine.received) == 1


def test_each_protocol_gets_its_message_and_raw_sqs_delivery_keeps_working(
    pipeline_stack: Any, functions: Any
) -> None:
    sqs, sns = pipeline_stack.sqs, pipeline_stack.sns
    topic = pipeline_stack.environment["CRQ_TOPIC_ARN"]
    raw = sqs.create_queue(QueueName="raw-consumer")["QueueUrl"]
    raw_arn = sqs.get_queue_attributes(QueueUrl=raw, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=raw_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="owner@example.com")

    functions.start(pipeline_stack.upload("specs/fine.yaml", sql_spec(CHANNELS, "fine")))
    settle(pipeline_stack, functions)

    # The enveloped SQS subscriber gets the JSON body
    [message] = pipeline_stack.notifications(1)
    assert message["body"]["event"] == "QUERY_SUCCEEDED"
    # The raw-delivery SQS subscriber gets the same JSON, unwrapped
    [received] = sqs.receive_message(QueueUrl=raw, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(received["Body"]) == message["body"]
    # The e-mail subscriber gets readable text (what moto recorded for the topic)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    backend = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    [(_, structure, *_)] = backend.topics[topic].sent_notifications
    published = json.loads(structure)
    assert json.loads(published["sqs"]) == json.loads(published["default"]) == message["body"]
    text = published["email"]
    assert text.startswith("crq: fine QUERY_SUCCEEDED")
    assert "Result files (" in text and "Cost: " in text
    assert not text.lstrip().startswith("{")
