"""A spec file's bytes to plain data (dicts, lists, str, int, float, bool, None), safely.

Whoever can write to the specs bucket controls these bytes, so nothing in them may construct
objects, expand exponentially, exhaust the stack, or slip past validation by ambiguity:

- at most 256 KiB, UTF-8 (a leading byte order mark is tolerated and dropped), not empty, no NUL;
- YAML is read event by event, never through a constructor: anchors, aliases, merge keys and
  every tag but the core ones (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq) are refused;
  plain scalars resolve as in the YAML 1.2 core schema (`yes`, `no`, `on`, `off` and dates stay
  strings), keys must be strings and unique, one document only;
- JSON refuses duplicate keys, NaN and Infinity;
- at most 20 levels of nesting and 10,000 values; numbers finite; strings valid Unicode.

Every problem becomes a FieldError with the field path and, where the parser knows it, the line
and column; as many as can be found are reported, not just the first.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events

from crq.spec.apimodel import FieldError, join
from crq.spec.limits import MAX_SPEC_BYTES, too_large  # shared with the S3 adapter

MAX_DEPTH = 20
MAX_ERRORS = 50
# Keys and values: a real spec holds dozens; refusing more bounds what a hostile file costs.
MAX_VALUES = 10_000
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}

_CORE = "tag:yaml.org,2002:"
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")


class DocumentInvalid(Exception):
    """The bytes are not a usable spec document; `errors` says why."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


def format_of(source: str) -> str | None:
    """'yaml' or 'json' from the file name's extension (case-insensitive); None if unsupported."""
    name = source.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return SUFFIXES.get(name[dot:].lower()) if dot > 0 else None


def load_document(data: bytes, source: str) -> dict[str, Any]:
    """Parse a spec file's bytes into a mapping of plain values, or raise DocumentInvalid."""
    kind = format_of(source)
    if kind is None:
        raise DocumentInvalid(
            [FieldError("", "unsupported file name: a spec file ends in .yaml, .yml or .json")]
        )
    text = _decode(data)
    value, errors = _parse_json(text) if kind == "json" else _parse_yaml(text)
    if errors:
        raise DocumentInvalid(errors)
    if value is None:
        raise DocumentInvalid([FieldError("", "the file has no content, only comments")])
    if not isinstance(value, dict):
        raise DocumentInvalid(
            [FieldError("", f"the top level must be a mapping of keys, not {_kind(value)}")]
        )
    return value


def _decode(data: bytes) -> str:
    def fail(message: str) -> DocumentInvalid:
        return DocumentInvalid([FieldError("", message)])

    if not data:
        raise fail("the file is empty")
    if len(data) > MAX_SPEC_BYTES:
        raise fail(too_large(len(data)))
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise fail("the file is UTF-16 text; save it as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    nul = data.find(b"\x00")
    if nul != -1:
        raise fail(f"the file is binary, not text (a NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise fail(
            f"the file is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}) cannot be decoded"
        ) from None
    if not text.strip():
        raise fail("the file has no content, only white space")
    return text


def capped(errors: list[FieldError]) -> list[FieldError]:
    """At most MAX_ERRORS errors, and a last one saying how many more there were."""
    if len(errors) <= MAX_ERRORS:
        return errors
    more = len(errors) - MAX_ERRORS
    plural = "s" if more > 1 else ""
    return [*errors[:MAX_ERRORS], FieldError("", f"{more} more error{plural} not shown")]


def _stopped() -> FieldError:
    return FieldError("", f"more errors not shown: reading stopped after {MAX_ERRORS}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a scalar"


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown"


def _invalid_unicode(value: str) -> bool:
    return not value.isascii() and _SURROGATE.search(value) is not None


# ---- YAML ----------------------------------------------------------------------------------


class _Stop(Exception):
    """Stops reading: the document is too deep or has too many problems to list."""


_INVALID: Any = object()  # stands for a key or value already reported as an error


@dataclass
class _Frame:
    path: str
    container: dict[str, Any] | list[Any]
    mark: Any  # where the collection starts, for errors about it as a key
    key: Any = None  # for mappings: the key awaiting its value, or None when a key is next
    key_line: dict[str, int] = field(default_factory=dict)


class _YamlReader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.parser: Any = None
        self.errors: list[FieldError] = []
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0
        self.values = 0
        self.anchor_refused = False

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))
        if len(self.errors) >= MAX_ERRORS:
            self.errors.append(_stopped())
            raise _Stop

    def child_path(self) -> str:
        if not self.stack:
            return ""
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            return join(frame.path, len(frame.container))
        if frame.key is None or frame.key is _INVALID:
            return frame.path
        return join(frame.path, frame.key)

    def read(self) -> Any:
        try:
            self.parser = _make_parser(self.text)  # PyYAML's reader checks characters here
            while self.parser.check_event():
                self.handle(self.parser.get_event())
        except _Stop:
            pass
        except yaml.YAMLError as exc:
            # Appended directly: this is the last error, the cap must not raise again here.
            self.errors.append(FieldError("", f"invalid YAML: {_yaml_problem(exc)}"))
        finally:
            if self.parser is not None:
                self.parser.dispose()
        return self.root

    def handle(self, event: events.Event) -> None:
        if isinstance(event, events.NodeEvent):  # scalars, aliases, collection starts
            self.values += 1
            if self.values > MAX_VALUES:
                self.error("", f"the file holds more than {MAX_VALUES} values: too many for a spec")
                raise _Stop
            if event.anchor is not None:
                self.refuse_anchor(event)
                if isinstance(event, events.AliasEvent):
                    self.attach(_INVALID, event.start_mark)
                    return
            if isinstance(event, events.ScalarEvent):
                self.attach(self.scalar(event), event.start_mark)
            elif isinstance(event, events.CollectionStartEvent):
                self.start_collection(event)
        elif isinstance(event, events.CollectionEndEvent):
            frame = self.stack.pop()
            self.attach(frame.container, frame.mark)
        elif isinstance(event, events.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.error(
                    "", f"the file holds more than one YAML document ({_at(event.start_mark)})"
                )
                raise _Stop

    def refuse_anchor(self, event: events.Event) -> None:
        # One message for the problem: an alias bomb holds dozens of them, all the same.
        if self.anchor_refused:
            return
        self.anchor_refused = True
        where = _at(event.start_mark)
        self.error(self.child_path(), f"YAML anchors and aliases are not allowed ({where})")

    def start_collection(self, event: events.CollectionStartEvent) -> None:
        is_map = isinstance(event, events.MappingStartEvent)
        path = self.child_path()
        allowed = _CORE + ("map" if is_map else "seq")
        if event.tag not in (None, "!", allowed):
            self.error(path, f"{_tag_problem(event.tag)} ({_at(event.start_mark)})")
        if len(self.stack) >= MAX_DEPTH:
            self.error(path, f"nested deeper than {MAX_DEPTH} levels ({_at(event.start_mark)})")
            raise _Stop
        self.stack.append(_Frame(path, {} if is_map else [], event.start_mark))

    def attach(self, value: Any, mark: Any) -> None:
        if not self.stack:
            self.root = None if value is _INVALID else value
            return
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            frame.container.append(None if value is _INVALID else value)
            return
        if frame.key is None:
            frame.key = self.key(frame, value, mark)
            return
        if frame.key is not _INVALID:
            frame.container[frame.key] = None if value is _INVALID else value
        frame.key = None

    def key(self, frame: _Frame, value: Any, mark: Any) -> Any:
        if value is _INVALID:
            return _INVALID
        if not isinstance(value, str):
            self.error(frame.path, f"keys must be strings, not {_kind(value)} ({_at(mark)})")
            return _INVALID
        if value == "<<":
            self.error(frame.path, f"YAML merge keys (<<) are not allowed ({_at(mark)})")
            return _INVALID
        if value in frame.key_line:
            first, where = frame.key_line[value], _at(mark)
            self.error(
                join(frame.path, value), f"duplicate key: set at line {first} and again at {where}"
            )
            return _INVALID
        frame.key_line[value] = mark.line + 1 if mark else 0
        return value

    def scalar(self, event: events.ScalarEvent) -> Any:
        def fail(problem: str) -> Any:
            self.error(self.child_path(), f"{problem} ({_at(event.start_mark)})")
            return _INVALID

        text: str = event.value
        tag = event.tag
        if tag is None and event.implicit[0]:
            resolved = _resolve_plain(text)  # only plain scalars are resolved
        elif tag in (None, "!", _CORE + "str"):
            resolved = text  # quoted and block scalars are strings
        elif tag in (_CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"):
            resolved = _resolve_plain(text)
            expected = _CORE_TYPES[tag]
            if expected is float and type(resolved) is int:
                resolved = float(resolved)
            if type(resolved) is not expected:
                return fail(f"{_short_tag(tag)} does not fit this value")
        else:
            return fail(_tag_problem(tag))
        if type(resolved) is str:
            if not resolved.isascii() and _SURROGATE.search(resolved):
                return fail("the string holds an invalid Unicode escape")
        elif resolved is _TOO_BIG:
            return fail("the number has too many digits")
        elif type(resolved) is float and not math.isfinite(resolved):
            return fail("numbers must be finite: no .inf or .nan")
        return resolved


_CORE_TYPES: dict[str, type] = {
    _CORE + "int": int,
    _CORE + "float": float,
    _CORE + "bool": bool,
    _CORE + "null": type(None),
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_STARTS = frozenset("0123456789+-.~nNtTfF")
_TOO_BIG: Any = object()


def _resolve_plain(text: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema."""
    if text and text[0] not in _PLAIN_STARTS:
        return text  # the common case, decided without a regular expression
    if _NULL.fullmatch(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        try:
            return int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)
        except ValueError:  # more digits than int() accepts from text
            return _TOO_BIG
    if _FLOAT.fullmatch(text):
        return float(text)
    if _SPECIAL_FLOAT.fullmatch(text):
        return float(text.replace(".", "", 1))
    return text


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return f"{exc.problem or exc.context or 'malformed'} ({_at(exc.problem_mark)})"
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        char = exc.character
        code = char if isinstance(char, int) else ord(char)
        return f"character U+{code:04X} is not allowed ({exc.reason})"
    return str(exc)


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _tag_problem(tag: str | None) -> str:
    shown = _short_tag(tag or "")
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"the YAML tag {shown} is not allowed: spec files hold plain values only"


def _make_parser(text: str) -> Any:
    # libyaml's parser when PyYAML was built with it (fast on a 256 KiB file), else PyYAML's
    # own; both only produce events here, so both are equally safe.
    try:
        from yaml._yaml import CParser
    except ImportError:
        return _PyParser(text)
    return CParser(text)


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


def _parse_yaml(text: str) -> tuple[Any, list[FieldError]]:
    reader = _YamlReader(text)
    root = reader.read()
    return root, reader.errors


# ---- JSON ----------------------------------------------------------------------------------


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers the keys it saw twice (json keeps the last one silently)."""

    duplicates: list[str]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> _JsonObject:
        obj = cls()
        obj.duplicates = []
        for key, value in pairs:
            if key in obj:
                obj.duplicates.append(key)
            else:
                obj[key] = value
        return obj


@dataclass(frozen=True)
class _NonFinite:
    literal: str


def _parse_json(text: str) -> tuple[Any, list[FieldError]]:
    try:
        value = json.loads(
            text,
            object_pairs_hook=_JsonObject.from_pairs,
            parse_constant=_NonFinite,
            parse_float=_json_float,
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return None, [FieldError("", f"invalid JSON: {exc.msg} ({where})")]
    except RecursionError:
        return None, [FieldError("", f"nested deeper than {MAX_DEPTH} levels")]
    except ValueError:  # an integer with more digits than int() accepts from text
        return None, [FieldError("", "invalid JSON: a number has too many digits")]
    errors: list[FieldError] = []
    if _count_values(value) > MAX_VALUES:
        return None, [
            FieldError("", f"the file holds more than {MAX_VALUES} values: too many for a spec")
        ]
    try:
        plain = _plain_json(value, "", 0, errors)
    except _Stop:
        return None, errors
    return plain, errors


def _count_values(value: Any) -> int:
    """Keys and values in a parsed JSON document, stopping early past MAX_VALUES."""
    count, pending = 0, [value]
    while pending and count <= MAX_VALUES:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            count += len(item)  # keys count, as they do in YAML
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


def _json_float(text: str) -> float | _NonFinite:
    number = float(text)
    return number if math.isfinite(number) else _NonFinite(text)


def _plain_json(value: Any, path: str, depth: int, errors: list[FieldError]) -> Any:
    def error(at: str, message: str) -> None:
        errors.append(FieldError(at, message))
        if len(errors) >= MAX_ERRORS:
            errors.append(_stopped())
            raise _Stop

    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        error(path, f"nested deeper than {MAX_DEPTH} levels")
        raise _Stop
    if isinstance(value, _JsonObject):
        for key in dict.fromkeys(value.duplicates):
            error(join(path, key), "duplicate key: keep one")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if _invalid_unicode(key):
                error(path, "a key holds an invalid Unicode escape")
                continue
            out[key] = _plain_json(item, join(path, key), depth + 1, errors)
        return out
    if isinstance(value, list):
        return [_plain_json(item, join(path, i), depth + 1, errors) for i, item in enumerate(value)]
    if isinstance(value, _NonFinite):
        error(path, "numbers must be finite: no NaN or Infinity")
        return None
    if isinstance(value, str) and _invalid_unicode(value):
        error(path, "the string holds an invalid Unicode escape")
        return None
    return value
