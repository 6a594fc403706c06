"""What every adapter reads off a botocore ClientError."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(exc: ClientError) -> str:
    """The service's error code (`ConditionalCheckFailedException`, `NoSuchKey`, `403`...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
