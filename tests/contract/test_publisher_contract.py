"""The notifications publisher's contract (crq.ports.Publisher): FakePublisher, and SnsPublisher
on the stack's topic with a queue subscribed (what a downstream consumer receives)."""

from __future__ import annotations

import json

import pytest
from contract_support import Topic

from crq.errors import PublishFailed

BODY = {"version": "1", "event": "QUERY_SUCCEEDED", "runId": "r1"}
ATTRIBUTES = {"event": "QUERY_SUCCEEDED", "spec": "daily", "team": "media"}


def test_a_published_message_reaches_a_subscriber_with_its_subject_and_attributes(
    topic: Topic,
) -> None:
    message_id = topic.publisher.publish("crq: daily SUCCEEDED", json.dumps(BODY), ATTRIBUTES)
    assert isinstance(message_id, str) and message_id
    assert topic.received(1) == [("crq: daily SUCCEEDED", BODY, ATTRIBUTES)]


def test_each_publish_is_its_own_message(topic: Topic) -> None:
    first = topic.publisher.publish("crq: a SUCCEEDED", json.dumps(BODY), ATTRIBUTES)
    second = topic.publisher.publish("crq: a SUCCEEDED", json.dumps(BODY), ATTRIBUTES)
    assert first != second
    assert len(topic.received(2)) == 2


def test_with_an_email_text_machine_subscribers_still_get_the_json(topic: Topic) -> None:
    topic.publisher.publish(
        "crq: daily SUCCEEDED", json.dumps(BODY), ATTRIBUTES, text="Your query succeeded."
    )
    assert topic.received(1) == [("crq: daily SUCCEEDED", BODY, ATTRIBUTES)]


def test_a_failed_publish_is_a_publish_failure_and_delivers_nothing(topic: Topic) -> None:
    with pytest.raises(PublishFailed):
        topic.unreachable.publish("crq: daily SUCCEEDED", json.dumps(BODY), ATTRIBUTES)
    assert topic.received(0) == []
