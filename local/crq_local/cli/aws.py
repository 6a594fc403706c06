"""The AWS side of the `crq` commands: boto3 clients and a deployed stack's outputs.

Commands call `aws.client(...)` through the module, so a test can hand them clients of its own.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from crq_local.cli.guard import fail


def _aws_config() -> Config:
    # Fail fast when nothing listens: a stopped sandbox should not mean a minute of retries.
    return Config(
        connect_timeout=3, read_timeout=30, retries={"mode": "standard", "max_attempts": 2}
    )


def client(service: str) -> Any:
    import boto3

    # A session of its own: boto3's default session would keep the credentials it found first.
    session = boto3.session.Session()
    return session.client(service, config=_aws_config())  # type: ignore[call-overload]


def stack_outputs(stack: str) -> dict[str, str]:
    cloudformation = client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            fail(f"stack {stack} does not exist in this account and region")
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
