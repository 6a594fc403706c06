"""Reading a spec file's bytes safely: encodings, limits, YAML and JSON hazards, scalar types."""

from __future__ import annotations

import codecs
from typing import Any

import pytest

import crq.spec.safe_load
from crq.spec.apimodel import FieldError
from crq.spec.safe_load import (
    MAX_DEPTH,
    MAX_ERRORS,
    MAX_SPEC_BYTES,
    MAX_VALUES,
    DocumentInvalid,
    format_of,
    load_document,
)


@pytest.fixture(params=["libyaml", "pure-python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both YAML parsers: Lambda's PyYAML may come without libyaml."""
    if request.param == "pure-python":
        monkeypatch.setattr(crq.spec.safe_load, "_make_parser", crq.spec.safe_load._PyParser)
    return str(request.param)


def errors_of(data: bytes, name: str = "spec.yaml") -> list[FieldError]:
    with pytest.raises(DocumentInvalid) as caught:
        load_document(data, f"s3://b/specs/{name}")
    return caught.value.errors


def value_of(text: str) -> Any:
    return load_document(f"v: {text}\n".encode(), "x.yaml")["v"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # YAML 1.2 core schema: only true/false are booleans; dates stay strings.
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("NO", "NO"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("2026-01-01", "2026-01-01"),
        ("2026-01-01T06:00:00Z", "2026-01-01T06:00:00Z"),
        ("12:30:00", "12:30:00"),
        ("~", None),
        ("null", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("012", 12),
        ("0x1F", 31),
        ("0o17", 15),
        ("1_000", "1_000"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("'42'", "42"),
        ('"true"', "true"),
        ("!!str 42", "42"),
        ("!!float 1", 1.0),
        ("!!int '7'", 7),
        ("!!bool true", True),
        ("!!null ''", None),
        ('"caf\\u00e9"', "café"),
        ("|\n  42\n", "42\n"),
        ("[1, a, {b: c}]", [1, "a", {"b": "c"}]),
        ("!!seq [a]", ["a"]),
        ("!!map {a: 1}", {"a": 1}),
    ],
)
def test_scalars_follow_the_yaml_core_schema(yaml_parser: str, text: str, value: Any) -> None:
    result = value_of(text)
    assert result == value
    assert type(result) is type(value)


def test_a_byte_order_mark_is_tolerated(yaml_parser: str) -> None:
    bom = codecs.BOM_UTF8
    assert load_document(bom + b"a: 1\r\n", "x.yaml") == {"a": 1}
    assert load_document(bom + b'{"a": 1}', "x.json") == {"a": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b" \n", "the file has no content, only white space"),
        (b"# nothing\n---\n", "the file has no content, only comments"),
        (
            codecs.BOM_UTF16_BE + "a: 1".encode("utf-16-be"),
            "the file is UTF-16 text; save it as UTF-8",
        ),
        (b"a: 1\n\x00", "the file is binary, not text (a NUL byte at offset 5)"),
        (
            b"a: 1\nb: \xc3\x28\n",
            "the file is not UTF-8: byte 0xc3 at offset 8 (line 2) cannot be decoded",
        ),
        (  # an encoded surrogate
            b"\xed\xa0\x80: 1",
            "the file is not UTF-8: byte 0xed at offset 0 (line 1) cannot be decoded",
        ),
        (b"42", "the top level must be a mapping of keys, not a number"),
        (b"true", "the top level must be a mapping of keys, not a boolean"),
        (b"just text", "the top level must be a mapping of keys, not a string"),
    ],
)
def test_unusable_documents(yaml_parser: str, data: bytes, message: str) -> None:
    assert errors_of(data) == [FieldError("", message)]


def test_the_size_limit_is_256_kib_inclusive() -> None:
    body = b"a: " + b"x" * (MAX_SPEC_BYTES - 4) + b"\n"
    assert len(body) == MAX_SPEC_BYTES
    assert len(load_document(body, "x.yaml")["a"]) == MAX_SPEC_BYTES - 4
    assert errors_of(body + b"\n") == [
        FieldError("", "the file is 262145 bytes; a spec file has at most 262144 bytes (256 KiB)")
    ]


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("s3://b/specs/a.yaml", "yaml"),
        ("s3://b/specs/a.YML", "yaml"),
        ("specs/a.b.json", "json"),
        ("a.txt", None),
        ("s3://b/specs/.yaml", None),
        ("s3://b/specs.yaml/readme", None),
    ],
)
def test_the_format_comes_from_the_extension(source: str, kind: str | None) -> None:
    assert format_of(source) == kind


def test_yaml_hazards_are_all_reported_with_positions(yaml_parser: str) -> None:
    data = (
        b"a: &anchor 1\n"
        b"b: *anchor\n"
        b"c: !!python/object/new:os.system [id]\n"
        b"d: 1\n"
        b"d: 2\n"
        b"3: three\n"
        b"e: {f: .nan, g: -.inf}\n"
    )
    assert errors_of(data) == [
        # One error for anchors and aliases, at the first: the alias on line 2 is the same problem
        FieldError("a", "YAML anchors and aliases are not allowed (line 1, column 4)"),
        FieldError(
            "c",
            "the YAML tag !!python/object/new:os.system is not allowed: spec files hold "
            "plain values only (line 3, column 4)",
        ),
        FieldError("d", "duplicate key: set at line 4 and again at line 5, column 1"),
        FieldError("", "keys must be strings, not a number (line 6, column 1)"),
        FieldError("e.f", "numbers must be finite: no .inf or .nan (line 7, column 8)"),
        FieldError("e.g", "numbers must be finite: no .inf or .nan (line 7, column 17)"),
    ]


def test_an_exponential_alias_bomb_is_refused_quickly(yaml_parser: str) -> None:
    # 10 levels of 10 aliases each: 10^10 nodes if anything expanded it.
    lines = ['l0: &l0 "lol"']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 11)]
    errors = errors_of("\n".join(lines).encode())
    # One problem, one message (it was 51, all saying the same)
    assert errors == [
        FieldError("l0", "YAML anchors and aliases are not allowed (line 1, column 5)")
    ]


def test_a_syntax_error_after_many_errors_is_still_reported(yaml_parser: str) -> None:
    not_finite = "".join(f"b{i}: .nan\n" for i in range(MAX_ERRORS - 1))
    errors = errors_of(f"a: 1\n{not_finite}c: [\n".encode())
    assert len(errors) == MAX_ERRORS
    assert errors[-1].message.startswith("invalid YAML: ")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 120_000])
def test_deep_yaml_nesting_is_refused(yaml_parser: str, depth: int) -> None:
    errors = errors_of(b"a: " + b"[" * depth + b"]" * depth)
    assert len(errors) == 1
    assert errors[0].message.startswith(("nested deeper than 20 levels", "invalid YAML"))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 120_000])
def test_deep_json_nesting_is_refused(depth: int) -> None:
    errors = errors_of(b'{"a": ' + b"[" * depth + b"]" * depth + b"}", "x.json")
    assert len(errors) == 1
    assert "nested deeper than 20 levels" in errors[0].message


def test_nesting_up_to_the_limit_is_fine(yaml_parser: str) -> None:
    depth = MAX_DEPTH - 1  # plus the top-level mapping
    value = load_document(b"a: " + b"[" * depth + b"1" + b"]" * depth, "x.yaml")["a"]
    for _ in range(depth - 1):
        value = value[0]
    assert value == [1]


def test_the_number_of_values_is_bounded(yaml_parser: str) -> None:
    # Keys count too: top-level mapping + key + list + items = MAX_VALUES is fine, one more is not.
    items = MAX_VALUES - 3
    assert len(load_document(b"a: [" + b"1," * (items - 1) + b"1]", "x.yaml")["a"]) == items
    too_many = [FieldError("", "the file holds more than 10000 values: too many for a spec")]
    assert errors_of(b"a: [" + b"1," * items + b"1]") == too_many
    assert load_document(b'{"a": [' + b"1," * (items - 1) + b"1]}", "x.json")["a"][0] == 1
    assert errors_of(b'{"a": [' + b"1," * items + b"1]}", "x.json") == too_many


def test_json_hazards_are_all_reported() -> None:
    data = (
        b'{"a": 1, "a": 2, "a": 3, "b": {"c": NaN, "d": -Infinity, "e": 1e999},'
        b' "f": ["\\ud83d"], "\\udfff": 1}'
    )
    assert errors_of(data, "x.json") == [
        FieldError("a", "duplicate key: keep one"),
        FieldError("b.c", "numbers must be finite: no NaN or Infinity"),
        FieldError("b.d", "numbers must be finite: no NaN or Infinity"),
        FieldError("b.e", "numbers must be finite: no NaN or Infinity"),
        FieldError("f[0]", "the string holds an invalid Unicode escape"),
        FieldError("", "a key holds an invalid Unicode escape"),
    ]


def test_json_syntax_errors_say_where() -> None:
    assert errors_of(b'{\n  "a": 1,\n  "b": [1 2]\n}', "x.json") == [
        FieldError("", "invalid JSON: Expecting ',' delimiter (line 3, column 11)")
    ]


def test_json_errors_are_capped() -> None:
    data = b"{" + b", ".join(b'"k": %d' % i for i in range(200)) + b"}"
    errors = errors_of(data, "x.json")
    # One duplicate key, reported once however often it repeats.
    assert errors == [FieldError("k", "duplicate key: keep one")]
    data = b"{" + b", ".join(b'"k%d": NaN' % i for i in range(200)) + b"}"
    errors = errors_of(data, "x.json")
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1].message == "more errors not shown: reading stopped after 50"


def test_a_number_with_too_many_digits_is_refused(yaml_parser: str) -> None:
    assert errors_of(b"a: " + b"9" * 5000) == [
        FieldError("a", "the number has too many digits (line 1, column 4)")
    ]
    assert errors_of(b'{"a": ' + b"9" * 5000 + b"}", "x.json") == [
        FieldError("", "invalid JSON: a number has too many digits")
    ]


def test_more_than_one_yaml_document_is_refused(yaml_parser: str) -> None:
    assert errors_of(b"a: 1\n---\nb: 2\n") == [
        FieldError("", "the file holds more than one YAML document (line 2, column 1)")
    ]


def test_yaml_syntax_errors_say_where(yaml_parser: str) -> None:
    (error,) = errors_of(b"a: 1\nb: [1, 2\nc: 3\n")
    assert error.field == ""
    assert error.message.startswith("invalid YAML: ")
    assert "(line " in error.message
