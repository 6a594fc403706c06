"""Pagination tokens: opaque to clients, and only ever the engine's own."""

from __future__ import annotations

import base64
from typing import Any

from crq.spec.apimodel import FieldError

from .errors import ValidationException

DEFAULT_PAGE = 100  # the model lets the service choose; 100 is its maximum maxResults


def encode(position: int) -> str:
    return base64.urlsafe_b64encode(f"crq:{position}".encode()).decode()


def decode(token: str | None) -> int | None:
    """The position in a token (None for no token); ValidationException for a foreign one."""
    if token is None:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("crq:"):
            raise ValueError(text)
        return int(text.removeprefix("crq:"))
    except ValueError as exc:
        raise ValidationException(
            "Invalid request: nextToken: is not a token this engine issued",
            fields=[FieldError("nextToken", "is not a token this engine issued")],
        ) from exc


def page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    """One page of a fixed list (offset tokens), and the token of the next page if any."""
    start = decode(params.get("nextToken")) or 0
    end = start + params.get("maxResults", DEFAULT_PAGE)
    return items[start:end], encode(end) if end < len(items) else None
