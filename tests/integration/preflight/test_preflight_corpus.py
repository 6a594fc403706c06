"""The preflight corpus through the real handlers: each spec in tests/preflight_specs is valid
offline, yet wrong for the corpus collaboration or the stack; each must end SPEC_REJECTED naming
its fields, with nothing started in Clean Rooms (moto + the in-process engine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from crq.spec import load_spec
from crq_local import stack
from crq_local.engine import EngineConfig, load_config

CORPUS = Path(__file__).resolve().parents[2] / "preflight_specs"
EXPECTED: dict[str, Any] = yaml.safe_load((CORPUS / "expected.yaml").read_text())
SPECS = sorted(EXPECTED["specs"])


def stack_environment(parameters: dict[str, Any]) -> dict[str, str]:
    """The functions' preflight variables for the corpus stack, resolved from template.yaml."""
    resolver = stack.Resolver(
        stack.load_template(),
        parameters=parameters,
        refs={
            "RunsTable": "t",
            "NotificationsTopic": "n",
            "SpecsBucket": "s",
            "SpecSchedules": "g",
        },
        # The start function's spec-schedule variables name these (issue 8).
        attributes={
            "SchedulerRole.Arn": "arn:aws:iam::111111111111:role/r",
            "EventsDeadLetterQueue.Arn": "arn:aws:sqs:us-east-1:111111111111:dlq",
        },
        stack_name="crq-test",
        region="us-east-1",
        account_id="111111111111",
    )
    environment = resolver.environment("StartFunction")
    return {k: v for k, v in environment.items() if not k.startswith(("POWERTOOLS_",))}


@pytest.fixture
def collaboration() -> EngineConfig:
    return load_config(CORPUS / "collaboration.yaml")


@pytest.fixture
def corpus_stack(pipeline_stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    environment = stack_environment(EXPECTED["stack"])
    for name in (
        "CRQ_MEMBERSHIP_IDS",
        "CRQ_RESULT_BUCKET_NAMES",
        "CRQ_ANALYSIS_TEMPLATE_ARNS",
        "CRQ_MAX_WORKER_TYPE",
        "CRQ_MAX_WORKER_COUNT",
    ):
        monkeypatch.setenv(name, environment[name])
    return pipeline_stack


def test_the_corpus_is_large_enough_and_every_file_is_listed() -> None:
    files = sorted(p.name for p in CORPUS.glob("*.yaml") if p.name not in ("expected.yaml",))
    files.remove("collaboration.yaml")
    assert files == SPECS
    assert len(SPECS) >= 25


@pytest.mark.parametrize("name", SPECS)
def test_each_spec_is_valid_offline(name: str) -> None:
    load_spec((CORPUS / name).read_bytes(), name)  # raises SpecInvalid if not


@pytest.mark.parametrize("name", SPECS)
def test_each_spec_ends_spec_rejected_naming_its_fields_and_nothing_starts(
    name: str, corpus_stack: Any, functions: Any
) -> None:
    # Given a spec that only the collaboration and the stack can tell is wrong
    event = corpus_stack.upload(f"specs/{name}", (CORPUS / name).read_bytes())

    # When it is uploaded
    result = functions.start(event)

    # Then the run is rejected before any query starts, and the notification names the fields
    assert result["outcome"] == "rejected", result
    assert corpus_stack.engine.received == []
    [message] = corpus_stack.notifications(1)
    body = message["body"]
    assert body["event"] == "SPEC_REJECTED"
    assert message["attributes"]["status"] == "REJECTED"
    found = [(e["field"], e["message"]) for e in body["errors"]]
    expected = EXPECTED["specs"][name]["errors"]
    assert len(found) == len(expected), found
    for field, fragment in expected:
        assert any(f == field and fragment in m for f, m in found), (field, fragment, found)
    [item] = corpus_stack.items()
    outcome = item["outcome"]
    outcome = json.loads(outcome) if isinstance(outcome, str) else outcome
    assert item["state"] == "ENDED" and outcome["event"] == "SPEC_REJECTED"
