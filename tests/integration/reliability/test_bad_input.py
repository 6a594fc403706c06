"""Guarantee 7: bad input never hurts.

Every file of the bad-spec corpus (tests/bad_specs, with the errors tests/bad_specs/expected.yaml
names for it) is uploaded and handed to the real start function as its Object Created event:
each ends in one SPEC_REJECTED message listing its field errors, no query reaches Clean Rooms,
and the function returns normally (an exception would make Lambda retry the event). A second
delivery of the same event changes nothing.

Already proven elsewhere: load_spec's verdict on each file, message by message
(tests/unit/spec/test_spec.py::test_each_bad_spec_is_rejected_with_precise_errors); events that are
not crq's (another bucket, another prefix, a folder marker, not a spec file, a delete) ignored
with no ledger row and no message
(tests/integration/pipeline/test_pipeline_flow.py::test_events_that_are_not_ours_are_ignored_quietly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from reliability_support import bodies

BAD = Path(__file__).resolve().parents[2] / "bad_specs"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((BAD / "expected.yaml").read_text())
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
# The S3 adapter refuses an oversized file before parsing it, in the words `crq validate`
# uses (safe_load.too_large): the corpus's expectation holds for both paths.


def expected_errors(name: str) -> tuple[list[list[str]], bool]:
    """The (field, message fragment) pairs the message must list, and whether only those."""
    entry = EXPECTED[name]
    return (entry["errors"], True) if "errors" in entry else (entry["includes"], False)


def problems_with(name: str, listed: list[dict[str, str]]) -> list[str]:
    wanted, exact = expected_errors(name)
    remaining = list(listed)
    problems = []
    for field, fragment in wanted:
        match = next(
            (e for e in remaining if e["field"] == field and fragment in e["message"]), None
        )
        if match is None:
            problems.append(f"no error on {field!r} containing {fragment!r}")
        else:
            remaining.remove(match)
    if exact and remaining:
        problems.append(f"unexpected errors {remaining}")
    return problems


def test_every_bad_spec_is_rejected_once_with_its_errors_and_nothing_runs(
    pipeline_stack: Any, functions: Any
) -> None:
    assert len(EXPECTED) >= 40
    failures: list[str] = []
    sources: dict[str, str] = {}
    ignored: list[str] = []
    # Given each corpus file uploaded under specs/, when its event is delivered, twice
    for name in sorted(EXPECTED):
        key = f"specs/{name}"
        event = pipeline_stack.upload(key, (BAD / name).read_bytes())
        try:
            first, again = functions.start(event), functions.start(event)
        except Exception as exc:  # a raise is a retry loop in Lambda
            failures.append(f"{name}: the start function raised {exc!r}")
            continue
        if not name.endswith(SPEC_SUFFIXES):
            ignored.append(name)  # not a spec file name: not crq's event
            if first["outcome"] != "ignored":
                failures.append(f"{name}: {first}")
            continue
        sources[f"s3://{pipeline_stack.specs_bucket}/{key}"] = name
        if (first["outcome"], again["outcome"]) != ("rejected", "ended"):
            failures.append(f"{name}: outcomes {first['outcome']}, {again['outcome']}")

    # Then each spec file got exactly one SPEC_REJECTED message, listing its errors
    messages = bodies(pipeline_stack.notifications(len(sources), timeout=5))
    by_source: dict[str, list[dict[str, Any]]] = {}
    for body in messages:
        by_source.setdefault(body["spec"]["source"], []).append(body)
    for source, name in sorted(sources.items(), key=lambda kv: kv[1]):
        got = by_source.pop(source, [])
        if len(got) != 1:
            failures.append(f"{name}: {len(got)} messages")
            continue
        [body] = got
        if body["event"] != "SPEC_REJECTED" or "query" in body:
            failures.append(f"{name}: {body['event']} {body.get('query')}")
        failures.extend(f"{name}: {p}" for p in problems_with(name, body["errors"]))
    failures.extend(f"message for an unexpected source {s}" for s in by_source)
    assert not failures, "\n".join(failures)

    # And nothing reached Clean Rooms; the ignored file left no trace in the ledger
    assert pipeline_stack.engine.received == []
    assert ignored == ["not-a-spec.txt"]
    assert {item["specKey"] for item in pipeline_stack.items()} == {
        f"specs/{name}" for name in sources.values()
    }


def test_a_schedule_naming_a_file_that_is_no_spec_is_rejected(
    pipeline_stack: Any, functions: Any
) -> None:
    # A schedule's specKey is not filtered like an upload: it is read, and rejected.
    name = "not-a-spec.txt"
    pipeline_stack.upload(f"specs/{name}", (BAD / name).read_bytes())
    fire = {"specKey": f"specs/{name}", "scheduledTime": "2026-03-01T02:00:00Z"}
    assert functions.start(fire)["outcome"] == "rejected"
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["event"] == "SPEC_REJECTED" and problems_with(name, body["errors"]) == []


def test_a_spec_deleted_before_its_event_arrives_is_rejected_not_retried(
    pipeline_stack: Any, functions: Any
) -> None:
    event = pipeline_stack.upload("specs/gone.yaml", "name: gone\n")
    pipeline_stack.s3.delete_object(
        Bucket=pipeline_stack.specs_bucket,
        Key="specs/gone.yaml",
        VersionId=event["detail"]["object"]["version-id"],
    )
    assert functions.start(event)["outcome"] == "rejected"
    [body] = bodies(pipeline_stack.notifications(1))
    assert body["errors"] == [
        {"field": "", "message": "that version of the spec object does not exist"}
    ]
    assert pipeline_stack.engine.received == []
