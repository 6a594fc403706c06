"""Constraint checks driven by botocore's Clean Rooms service model (cleanrooms 2022-02-17).

botocore validates required members, types and minimums client-side; the service checks the
rest (patterns, maximum lengths and values, enums, tagged unions) only after the request has
left, and for crq that is too late: a bad spec must be refused before anything is billed. This
module walks the model itself, so every constraint Clean Rooms declares is enforced here without
copying it by hand, and the JSON Schema for spec files comes from the same walk.

Messages never echo a value: some members are `sensitive` in the model (query parameters), and
an error message ends up in notifications and logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.model import ServiceModel, Shape

SERVICE = "cleanrooms"
API_VERSION = "2022-02-17"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field. `field` is a dotted path: `a.b[0].c`; empty for the root."""

    field: str
    message: str

    def __str__(self) -> str:
        return located(self.field, self.message)


# Where a problem of the whole file is: said in words, never as an empty field path.
ROOT_LOCATION = "the file"


def located(field: str, message: str) -> str:
    """`field: message`; for the whole file, `the file: message` (or the message alone when it
    already says `the file ...`)."""
    if field:
        return f"{field}: {message}"
    if message.startswith(ROOT_LOCATION):
        return message
    return f"{ROOT_LOCATION}: {message}"


@lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    # Loaded lazily: importing this module must stay cheap for a Lambda cold start.
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel

    data = create_loader().load_service_model(SERVICE, "service-2", API_VERSION)
    return ServiceModel(data, service_name=SERVICE)


@cache
def shape(name: str) -> Shape:
    # botocore builds a new Shape on every shape_for() and resolves its members again on each
    # new object; one Shape per name keeps the resolved member tree (its cached properties).
    return service_model().shape_for(name)


def join(path: str, key: str | int) -> str:
    """Extend a field path with a member name or a list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def is_union(s: Shape) -> bool:
    return bool(s.metadata.get("union"))


def is_sensitive(s: Shape) -> bool:
    return bool(s.metadata.get("sensitive"))


def check_shape(shape_name: str, value: Any, *, path: str = "") -> list[FieldError]:
    """Every violation of the model's constraints by `value`, as FieldErrors (empty when valid)."""
    errors: list[FieldError] = []
    _check(shape(shape_name), value, path, errors)
    return errors


_TYPE_NAMES = {
    "structure": "an object",
    "map": "an object",
    "list": "a list",
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "boolean": "a boolean",
    "double": "a number",
    "float": "a number",
    "timestamp": "a timestamp",
    "blob": "bytes",
}


def _type_ok(type_name: str, value: Any) -> bool:
    match type_name:
        case "structure" | "map":
            return isinstance(value, dict)
        case "list":
            return isinstance(value, list)
        case "string":
            return isinstance(value, str)
        case "integer" | "long":
            return isinstance(value, int) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "double" | "float":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case _:
            return True  # timestamps and blobs never appear in the requests crq sends


def _check(s: Shape, value: Any, path: str, errors: list[FieldError]) -> None:
    if not _type_ok(s.type_name, value):
        errors.append(FieldError(path, f"must be {_TYPE_NAMES.get(s.type_name, s.type_name)}"))
        return
    match s.type_name:
        case "structure":
            _check_structure(s, value, path, errors)
        case "list":
            _check_size(s, len(value), path, errors, unit="item")
            for i, item in enumerate(value):
                _check(s.member, item, join(path, i), errors)  # type: ignore[attr-defined]
        case "map":
            _check_size(s, len(value), path, errors, unit="entry")
            for key, item in value.items():
                key_path = join(path, str(key))
                _check(s.key, key, key_path, errors)  # type: ignore[attr-defined]
                _check(s.value, item, key_path, errors)  # type: ignore[attr-defined]
        case "string":
            _check_string(s, value, path, errors)
        case "integer" | "long" | "double" | "float":
            _check_range(s, value, path, errors)


def _check_structure(s: Shape, value: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    members = s.members  # type: ignore[attr-defined]
    for key in value:
        if key not in members:
            expected = ", ".join(members)
            errors.append(FieldError(join(path, str(key)), f"unknown field; expected {expected}"))
    present = [name for name in members if name in value]
    if is_union(s):
        if not present:
            errors.append(FieldError(path, f"must set exactly one of {', '.join(members)}"))
        elif len(present) > 1:
            errors.append(
                FieldError(
                    path,
                    f"must set exactly one of {', '.join(members)}, not {' and '.join(present)}",
                )
            )
    for name in s.required_members:  # type: ignore[attr-defined]
        if name not in present:
            errors.append(FieldError(join(path, name), "is required"))
    for name in present:
        _check(members[name], value[name], join(path, name), errors)


def _check_size(s: Shape, size: int, path: str, errors: list[FieldError], *, unit: str) -> bool:
    low, high = s.metadata.get("min"), s.metadata.get("max")
    if low is not None and size < low:
        errors.append(FieldError(path, f"must have at least {low} {unit}{'s' if low != 1 else ''}"))
        return False
    if high is not None and size > high:
        errors.append(
            FieldError(path, f"must have at most {high} {unit}{'s' if high != 1 else ''}")
        )
        return False
    return True


def _check_string(s: Shape, value: str, path: str, errors: list[FieldError]) -> None:
    enum = s.enum  # type: ignore[attr-defined]
    if enum and value not in enum:
        errors.append(FieldError(path, f"must be one of {', '.join(enum)}"))
        return
    if not _check_size(s, len(value), path, errors, unit="character"):
        return  # one error per field: a wrong length says enough
    pattern = s.metadata.get("pattern")
    if pattern is not None and not compiled_pattern(pattern).fullmatch(value):
        words = PATTERN_WORDS.get(s.name)
        errors.append(FieldError(path, words or f"must match the pattern {pattern}"))


# The model's patterns a user meets most, in words (the raw regex of a bucket name is 90
# characters of lookaheads). Keyed by shape name; other patterns are quoted as they are.
PATTERN_WORDS = {
    "ProtectedQueryS3OutputConfigurationBucketString": (
        "is not a valid S3 bucket name: use lowercase letters, digits, '-' and '.', starting "
        "and ending with a letter or digit (the name alone: not an s3:// URI, not an IP address)"
    ),
    "MembershipIdentifier": (
        "must be a membership id: a lowercase UUID such as 6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10 "
        "(not the membership's ARN)"
    ),
    "UUID": "must be a lowercase UUID such as 6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10",
    "KeyPrefix": (
        "may hold only letters, digits and _ ! . = * / - (no spaces, colons or other characters)"
    ),
    "AccountId": "must be an AWS account id: digits only",
    "AnalysisTemplateArn": (
        "must be an analysis template ARN: arn:aws:cleanrooms:<region>:<account id>:"
        "membership/<membership id>/analysistemplate/<template id>"
    ),
}


def _check_range(s: Shape, value: float, path: str, errors: list[FieldError]) -> None:
    low, high = s.metadata.get("min"), s.metadata.get("max")
    if low is not None and value < low:
        errors.append(FieldError(path, f"must be at least {low}"))
    if high is not None and value > high:
        errors.append(FieldError(path, f"must be at most {high}"))


@lru_cache(maxsize=256)
def compiled_pattern(pattern: str) -> re.Pattern[str]:
    # Model patterns are ECMAScript regexes: \w and \d are ASCII there. The service applies
    # them to the whole value, so they are matched in full, not searched.
    return re.compile(pattern, re.ASCII)


def json_schema(shape_name: str) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12 vocabulary) for an input shape, for editors and docs.

    Patterns are anchored (`^(?:...)$`) because JSON Schema searches where the service matches.
    """
    return _schema(shape(shape_name))


def _schema(s: Shape) -> dict[str, Any]:
    doc = _plain(s.documentation)
    out: dict[str, Any] = {"description": doc} if doc else {}
    meta = s.metadata
    match s.type_name:
        case "structure":
            members = s.members  # type: ignore[attr-defined]
            out |= {
                "type": "object",
                "additionalProperties": False,
                "properties": {name: _schema(m) for name, m in members.items()},
            }
            required = list(s.required_members)  # type: ignore[attr-defined]
            if required:
                out["required"] = required
            if is_union(s):
                out["oneOf"] = [{"required": [name]} for name in members]
        case "map":
            out |= {
                "type": "object",
                "propertyNames": _schema(s.key),  # type: ignore[attr-defined]
                "additionalProperties": _schema(s.value),  # type: ignore[attr-defined]
            }
            _bounds(out, meta, "minProperties", "maxProperties")
        case "list":
            out |= {"type": "array", "items": _schema(s.member)}  # type: ignore[attr-defined]
            _bounds(out, meta, "minItems", "maxItems")
        case "string":
            out["type"] = "string"
            if s.enum:  # type: ignore[attr-defined]
                out["enum"] = list(s.enum)  # type: ignore[attr-defined]
            _bounds(out, meta, "minLength", "maxLength")
            if "pattern" in meta:
                out["pattern"] = f"^(?:{meta['pattern']})$"
        case "integer" | "long":
            out["type"] = "integer"
            _bounds(out, meta, "minimum", "maximum")
        case "double" | "float":
            out["type"] = "number"
            _bounds(out, meta, "minimum", "maximum")
        case "boolean":
            out["type"] = "boolean"
    return out


def _bounds(out: dict[str, Any], meta: dict[str, Any], low_key: str, high_key: str) -> None:
    if "min" in meta:
        out[low_key] = meta["min"]
    if "max" in meta:
        out[high_key] = meta["max"]


def _plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html or "")).strip()
