"""Write the JSON Schemas of crq's user-facing contracts into schema/ (`make schema`).

Each schema comes from the code that enforces the contract, so the two cannot disagree:
spec.schema.json from botocore's Clean Rooms model (through crq.spec.apimodel) and the pipeline keys'
pydantic model (crq.spec.model.PipelineKeys); notification.schema.json from crq.notification's models.
tests/unit/test_schemas.py fails when a committed file differs from what this script writes.

    python scripts/generate_schemas.py           # write every schema
    python scripts/generate_schemas.py --check   # exit 1, naming the stale files, if any differ
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://github.com/crq/crq/schema/"

PLACEHOLDER_NOTE = (
    "May hold crq placeholders such as {{ run_date - 7d }} or {{ run_time | %Y/%m/%d }}; "
    "crq checks the value once they are rendered."
)


def spec_schema() -> dict[str, Any]:
    """The spec file: the StartProtectedQuery request as the model has it, plus pipeline keys."""
    from crq.spec.apimodel import json_schema
    from crq.spec.model import (
        MAX_NOTIFY_VALUE_LENGTH,
        NOTIFY_NAME_PATTERN,
        REQUEST_SHAPE,
        RESERVED_NOTIFY_ATTRIBUTES,
        PipelineKeys,
    )

    schema = json_schema(REQUEST_SHAPE)
    props = schema["properties"]
    # `type` has a default in a spec file, so it is not required there.
    schema["required"] = [name for name in schema.get("required", []) if name != "type"]
    props["type"]["default"] = "SQL"

    sql = props["sqlParameters"]
    sql_props = sql["properties"]
    sql_props["queryString"] = _templated(sql_props["queryString"])
    params = sql_props["parameters"]
    params["additionalProperties"] = _templated(params["additionalProperties"])
    # The rules the model cannot express (crq.spec.request enforces them too).
    sql["oneOf"] = [{"required": ["queryString"]}, {"required": ["analysisTemplateArn"]}]
    sql["dependentRequired"] = {"parameters": ["analysisTemplateArn"]}

    outputs = props["resultConfiguration"]["properties"]["outputConfiguration"]["properties"]
    s3 = outputs["s3"]["properties"]
    s3["keyPrefix"] = _templated(s3["keyPrefix"])
    locations = outputs["distribute"]["properties"]["locations"]
    location_s3 = locations["items"]["properties"]["s3"]["properties"]
    location_s3["keyPrefix"] = _templated(location_s3["keyPrefix"])
    locations |= {"contains": {"required": ["s3"]}, "minContains": 0, "maxContains": 1}

    pipeline = PipelineKeys.model_json_schema()
    definitions = pipeline.get("$defs", {})
    for name, prop in pipeline["properties"].items():
        props[name] = _inlined(_without_null(prop), definitions)
    expression = {"type": "string", "pattern": "^(cron|rate|at)\\(.*\\)$"}
    schedule = props["schedule"]
    schedule["anyOf"][0] = expression
    schedule["anyOf"][1]["properties"]["expression"] |= expression
    notify = props["notify"]
    notify["propertyNames"] = {
        "pattern": NOTIFY_NAME_PATTERN,
        "not": {
            "anyOf": [
                {"pattern": "^(?:" + "|".join(map(_any_case, RESERVED_NOTIFY_ATTRIBUTES)) + ")$"},
                {"pattern": "^(?:" + _any_case("aws") + "|" + _any_case("amazon") + ")\\."},
                {"pattern": "^\\.|\\.$|\\.\\."},
            ]
        },
    }
    notify["additionalProperties"] = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NOTIFY_VALUE_LENGTH,
        "not": {"pattern": "\\{\\{"},
    }

    return {
        "$schema": DRAFT,
        "$id": ID_BASE + "spec.schema.json",
        "title": "crq spec file",
        "description": (
            "A crq spec file (YAML or JSON, UTF-8, at most 256 KiB): the StartProtectedQuery "
            "request of AWS Clean Rooms, verbatim, plus crq's keys name, maxRuntimeMinutes, "
            "maxAttempts, notify, schedule and timezone. See docs/spec.md."
        ),
        **schema,
    }


def notification_schema() -> dict[str, Any]:
    """A run's notification (crq.notification) or a schedule change's (crq.schedule_notice)."""
    from crq.notification import notification_schema as build
    from crq.schedule_notice import schedule_notification_schema

    run = build()
    head = {key: run.pop(key) for key in ("$schema", "title", "description") if key in run}
    definitions = run.pop("$defs", {})
    schedule = schedule_notification_schema()
    schedule_definitions = schedule.pop("$defs", {})
    # The same compatibility policy as the run notification: unknown keys and any 1.x version.
    for part in (schedule, *schedule_definitions.values()):
        part.pop("additionalProperties", None)
    schedule["properties"]["version"] = {"type": "string", "pattern": r"^1(\.[0-9]+)?$"}
    definitions |= schedule_definitions
    return {
        **head,
        "description": head.get("description", "")
        + " Schedule changes (SCHEDULE_SET, SCHEDULE_REMOVED) have a body of their own.",
        "anyOf": [{"$ref": "#/$defs/RunNotification"}, {"$ref": "#/$defs/ScheduleNotification"}],
        "$defs": {**definitions, "RunNotification": run, "ScheduleNotification": schedule},
    }


# Every generated schema: (file name under schema/, generator). Add a contract here.
SCHEMAS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("spec.schema.json", spec_schema),
    ("notification.schema.json", notification_schema),
]


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _templated(prop: dict[str, Any]) -> dict[str, Any]:
    """A string property that may also hold placeholders (checked by crq, not by the schema)."""
    plain = copy.deepcopy(prop)
    description = plain.pop("description", "")
    return {
        "description": f"{description} {PLACEHOLDER_NOTE}".strip(),
        "anyOf": [plain, {"type": "string", "pattern": "\\{\\{"}],
    }


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """pydantic's schema of an optional key, minus `null` (crq refuses null values) and title."""
    out = {key: value for key, value in prop.items() if key != "title"}
    branches = out.pop("anyOf", None)
    if branches is not None:
        kept = [branch for branch in branches if branch != {"type": "null"}]
        out = {**kept[0], **out} if len(kept) == 1 else {"anyOf": kept, **out}
        if out.get("default", 0) is None:
            del out["default"]
    return out


def _inlined(prop: Any, definitions: dict[str, Any]) -> Any:
    """`prop` with pydantic's `$ref`s to `$defs` replaced by the definitions (minus titles)."""
    if isinstance(prop, list):
        return [_inlined(item, definitions) for item in prop]
    if not isinstance(prop, dict):
        return prop
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = definitions[ref.removeprefix("#/$defs/")]
        return _inlined({k: v for k, v in target.items() if k != "title"}, definitions)
    out = {key: _inlined(value, definitions) for key, value in prop.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: _without_null(value) for name, value in out["properties"].items()
        }
    return out


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for name, generate in SCHEMAS:
        path = SCHEMA_DIR / name
        text = render(generate())
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(SCHEMA_DIR.parent)}")
    if stale:
        print("stale: " + ", ".join(stale) + " (run `make schema`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
