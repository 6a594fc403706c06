"""`crq validate --online --stack NAME` reads the stack's side from the deployed start
function's environment (the same Settings the function validates at cold start)."""

from __future__ import annotations

from typing import Any

import pytest

from crq_local.cli import aws, validate
from crq_local.cli.guard import CliError


class FakeLambda:
    def __init__(self, variables: dict[str, str]) -> None:
        self.variables = variables
        self.asked: list[str] = []

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        self.asked.append(FunctionName)
        return {"Environment": {"Variables": self.variables}}


DEPLOYED = {
    "CRQ_TABLE_NAME": "t",
    "CRQ_TOPIC_ARN": "arn:aws:sns:us-east-1:111111111111:t",
    "CRQ_SPECS_BUCKET": "specs",
    "CRQ_MEMBERSHIP_IDS": "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10",
    "CRQ_RESULT_BUCKET_NAMES": "results-a,results-b",
    "CRQ_MAX_WORKER_COUNT": "16",
}


def test_the_stack_side_comes_from_the_deployed_start_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeLambda(DEPLOYED)
    monkeypatch.setattr(aws, "stack_outputs", lambda name: {"StartFunctionName": f"{name}-start"})
    monkeypatch.setattr(aws, "client", lambda service: fake)

    settings = validate.stack_settings("crq-prod")

    assert fake.asked == ["crq-prod-start"]
    assert settings.result_bucket_names == ("results-a", "results-b")
    assert settings.max_worker_count == 16


def test_a_stack_that_is_not_crqs_or_is_misconfigured_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aws, "stack_outputs", lambda name: {})
    with pytest.raises(CliError, match="has no StartFunctionName output"):
        validate.stack_settings("other")

    broken = FakeLambda({**DEPLOYED, "CRQ_MAX_WORKER_COUNT": "many"})
    monkeypatch.setattr(aws, "stack_outputs", lambda name: {"StartFunctionName": "f"})
    monkeypatch.setattr(aws, "client", lambda service: broken)
    with pytest.raises(CliError, match=r"function f: .*CRQ_MAX_WORKER_COUNT"):
        validate.stack_settings("crq-prod")
