"""SNS: publishing notifications to the stack's topic."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from crq.errors import PublishFailed

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class SnsPublisher:
    def __init__(self, topic_arn: str, client: SNSClient) -> None:
        self._topic_arn = topic_arn
        self._client = client

    def publish(
        self, subject: str, message: str, attributes: Mapping[str, str], text: str | None = None
    ) -> str:
        """Publish the JSON `message`; with `text`, e-mail subscribers get the text instead
        (SNS message structure per protocol; raw-delivery SQS subscribers get the JSON)."""
        extra: dict[str, str] = {}
        if text is not None:
            message = json.dumps(
                {"default": message, "email": text, "sqs": message, "lambda": message}
            )
            extra["MessageStructure"] = "json"
        try:
            response = self._client.publish(
                TopicArn=self._topic_arn,
                Subject=subject,
                Message=message,
                **extra,  # type: ignore[arg-type]
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in attributes.items()
                },
            )
        except (ClientError, BotoCoreError) as exc:
            # The claim protocol re-publishes later; the caller logs this and carries on.
            raise PublishFailed(f"SNS publish failed: {exc}") from exc
        return str(response["MessageId"])
