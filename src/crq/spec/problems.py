"""Spec problems: `SpecInvalid` (every problem of one file) and pydantic's errors in crq's words.

A problem is a `FieldError` (field path, message); messages never echo a value, since some are
sensitive (query parameters) and every message ends up in notifications and logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from crq.errors import CrqError
from crq.spec.apimodel import FieldError, join
from crq.spec.model import NAME_RULE
from crq.spec.safe_load import capped


class SpecInvalid(CrqError):
    """A spec that cannot run as written; `errors` lists every problem, `source` the file."""

    def __init__(self, errors: list[FieldError], *, source: str) -> None:
        self.errors = errors
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}: {error}" for error in self.errors]


_PYDANTIC_MESSAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "int_type": lambda ctx: "must be an integer",
    "string_type": lambda ctx: "must be a string",
    "bool_type": lambda ctx: "must be a boolean",
    "dict_type": lambda ctx: "must be an object",
    "model_type": lambda ctx: "must be an object",
    "list_type": lambda ctx: "must be a list",
    "missing": lambda ctx: "is required",
    "extra_forbidden": lambda ctx: "unknown field",
    "greater_than_equal": lambda ctx: f"must be at least {ctx['ge']}",
    "less_than_equal": lambda ctx: f"must be at most {ctx['le']}",
    "string_too_long": lambda ctx: f"must have at most {ctx['max_length']} characters",
    "too_long": lambda ctx: f"must have at most {ctx['max_length']} entries",
    "string_pattern_mismatch": lambda ctx: f"must be {NAME_RULE}",
}


def field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        if loc[:2] == ("schedule", "str"):
            continue  # `schedule` is a mapping here: the string branch's complaint is noise
        path = ""
        for part in loc:
            if part not in ("[key]", "ScheduleKeys"):
                path = join(path, part)
        message = _PYDANTIC_MESSAGES.get(error["type"])
        errors.append(FieldError(path, message(error.get("ctx", {})) if message else error["msg"]))
    return errors


def tidy(errors: list[FieldError]) -> list[FieldError]:
    """Drop repeats, keep the order found, and cap the list (a notification has a size limit)."""
    return capped(list(dict.fromkeys(errors)))
