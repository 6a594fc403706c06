"""The committed JSON Schemas are what the code generates, and they judge spec files as crq does."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from crq.spec.safe_load import load_document

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "bad_specs"
GOOD = ROOT / "tests" / "good_specs"
BAD_EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((BAD / "expected.yaml").read_text())


def load_generator() -> ModuleType:
    path = ROOT / "scripts" / "generate_schemas.py"
    module_spec = importlib.util.spec_from_file_location("generate_schemas", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
SPEC_SCHEMA = GENERATOR.spec_schema()
VALIDATOR = jsonschema.Draft202012Validator(SPEC_SCHEMA)


@pytest.mark.parametrize("name", [name for name, _ in GENERATOR.SCHEMAS])
def test_committed_schema_is_the_generated_one(name: str) -> None:
    generate = dict(GENERATOR.SCHEMAS)[name]
    committed = (ROOT / "schema" / name).read_text(encoding="utf-8")
    assert committed == GENERATOR.render(generate()), f"schema/{name} is stale: make schema"


def test_check_mode_agrees() -> None:
    assert GENERATOR.main(["--check"]) == 0


@pytest.mark.parametrize("name", [name for name, _ in GENERATOR.SCHEMAS])
def test_each_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(dict(GENERATOR.SCHEMAS)[name]())


@pytest.mark.parametrize(
    "name", sorted(p.name for p in GOOD.iterdir() if p.name != "expected.yaml")
)
def test_good_specs_validate(name: str) -> None:
    document = load_document((GOOD / name).read_bytes(), name)
    errors = [error.message for error in VALIDATOR.iter_errors(document)]
    assert errors == []


SCHEMA_REJECTS = sorted(name for name, entry in BAD_EXPECTED.items() if entry.get("schema_rejects"))


def test_most_of_the_corpus_is_caught_by_editors_too() -> None:
    assert len(SCHEMA_REJECTS) >= 40


@pytest.mark.parametrize("name", SCHEMA_REJECTS)
def test_bad_specs_fail_the_schema(name: str) -> None:
    document = load_document((BAD / name).read_bytes(), name)
    assert not VALIDATOR.is_valid(document)


def test_the_schema_describes_the_spec_format() -> None:
    props = SPEC_SCHEMA["properties"]
    assert SPEC_SCHEMA["required"] == ["membershipIdentifier", "sqlParameters"]
    assert props["type"]["default"] == "SQL"
    assert {"name", "maxRuntimeMinutes", "maxAttempts", "notify"} <= set(props)
    assert props["maxAttempts"] == {
        "default": 2,
        "description": props["maxAttempts"]["description"],
        "maximum": 5,
        "minimum": 1,
        "type": "integer",
    }
    assert SPEC_SCHEMA["additionalProperties"] is False


@pytest.mark.parametrize(
    ("key_prefix", "valid"),
    [
        ("daily/{{ run_date }}", True),  # placeholders are crq's to check
        ("daily/2026-01-05", True),
        ("daily results", False),
    ],
)
def test_placeholder_fields_accept_placeholders(key_prefix: str, valid: bool) -> None:
    document = {
        "membershipIdentifier": "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10",
        "sqlParameters": {"queryString": "SELECT '{{ run_date }}'"},
        "resultConfiguration": {
            "outputConfiguration": {
                "s3": {"resultFormat": "CSV", "bucket": "crq-results", "keyPrefix": key_prefix}
            }
        },
    }
    assert VALIDATOR.is_valid(document) is valid
