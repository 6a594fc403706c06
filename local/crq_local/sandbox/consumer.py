"""The downstream consumer: an SQS queue subscribed to the topic, read as any subscriber would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from crq_local.sandbox.notifications import ReceivedNotification, parse_sns_message
from crq_local.sandbox.worker import Worker

POLL_WAIT_SECONDS = 1


def subscribe_queue(sns: Any, sqs: Any, topic_arn: str, queue_name: str) -> str:
    """Create a queue, subscribe it to the topic (SNS envelope kept), return its URL."""
    queue_url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return queue_url


class NotificationConsumer(Worker):
    """Polls the queue on a thread and hands each notification to `on_notification`."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        on_notification: Callable[[ReceivedNotification], None],
        on_error: Callable[[str], None],
    ) -> None:
        super().__init__("consumer")
        self._sqs = sqs
        self._queue_url = queue_url
        self._on_notification = on_notification
        self._on_error = on_error

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self._sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=POLL_WAIT_SECONDS,
                )
                for message in response.get("Messages", []):
                    try:
                        notification = parse_sns_message(message["Body"])
                    except (ValueError, KeyError) as exc:
                        self._on_error(f"consumer: a message that is not a notification: {exc}")
                    else:
                        self._on_notification(notification)
                    self._sqs.delete_message(
                        QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
            except (BotoCoreError, ClientError) as exc:
                if self._stop.is_set():
                    return
                self._on_error(f"consumer: cannot read its queue: {exc}")
                self._stop.wait(1)
