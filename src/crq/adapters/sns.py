"""SNS: publishing notifications to the stack's topic."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from crq.errors import PublishFailed

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import PublishInputTypeDef


class SnsPublisher:
    def __init__(self, topic_arn: str, client: SNSClient) -> None:
        self._topic_arn = topic_arn
        self._client = client

    def publish(
        self, subject: str, message: str, attributes: Mapping[str, str], text: str | None = None
    ) -> str:
        """Publish the JSON `message`; with `text`, e-mail subscribers get the text instead
        (SNS message structure per protocol; raw-delivery SQS subscribers get the JSON)."""
        request: PublishInputTypeDef = {
            "TopicArn": self._topic_arn,
            "Subject": subject,
            "Message": message,
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value}
                for name, value in attributes.items()
            },
        }
        if text is not None:
            request["Message"] = json.dumps(
                {"default": message, "email": text, "sqs": message, "lambda": message}
            )
            request["MessageStructure"] = "json"
        try:
            response = self._client.publish(**request)
        except (ClientError, BotoCoreError) as exc:
            # The claim protocol re-publishes later; the caller logs this and carries on.
            raise PublishFailed(f"SNS publish failed: {exc}") from exc
        return str(response["MessageId"])
