"""A table's analysisRule in the collaboration file: the API's policy shapes, checked on load.

A malformed rule stops the engine before it starts, and the message names the file, the key
path down to the member, and the reason (from botocore's model, or from the table's columns).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_engine_config import refusal, write

from crq_local.engine import load_config
from crq_local.engine.analysis_rules import rule_of
from crq_local.engine.testing import example_world

TABLE = "collaborations[0].tables[0]"
RULE = f"{TABLE}.analysisRule"


def aggregation() -> dict[str, Any]:
    return {
        "v1": {
            "aggregation": {
                "aggregateColumns": [
                    {"columnNames": ["hashed_email"], "function": "COUNT_DISTINCT"}
                ],
                "joinColumns": ["hashed_email"],
                "dimensionColumns": ["campaign_id", "channel"],
                "scalarFunctions": ["LOWER"],
                "outputConstraints": [
                    {"columnName": "hashed_email", "minimum": 50, "type": "COUNT_DISTINCT"}
                ],
            }
        }
    }


def with_rule(rule: Any) -> dict[str, Any]:
    world = example_world()
    world["collaborations"][0]["tables"][0]["analysisRule"] = rule
    return world


def body(rule: dict[str, Any]) -> dict[str, Any]:
    inner: dict[str, Any] = rule["v1"]["aggregation"]
    return inner


def test_a_policy_in_the_api_shape_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, with_rule(aggregation())))
    rule = rule_of(config.collaborations[0].tables[0])
    assert rule is not None and rule.type == "AGGREGATION"
    assert rule.columns("dimensionColumns") == ["campaign_id", "channel"]


Change = Callable[[dict[str, Any]], Any]


def _set(key: str, value: Any) -> Change:
    def change(rule: dict[str, Any]) -> None:
        body(rule)[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (
            _set("scalarFunctions", ["SHA2"]),
            f"{RULE}.v1.aggregation.scalarFunctions[0]",
            "must be one of",
        ),
        (
            _set(
                "outputConstraints",
                [{"columnName": "hashed_email", "minimum": 1, "type": "COUNT_DISTINCT"}],
            ),
            f"{RULE}.v1.aggregation.outputConstraints[0].minimum",
            "at least 2",
        ),
        (_set("joinColums", ["x"]), f"{RULE}.v1.aggregation.joinColums", "unknown"),
        (
            lambda r: body(r).pop("outputConstraints"),
            f"{RULE}.v1.aggregation.outputConstraints",
            "required",
        ),
        (
            lambda r: r["v1"].update({"list": {"joinColumns": ["a"], "listColumns": ["b"]}}),
            f"{RULE}.v1",
            "exactly one",
        ),
        (
            _set("dimensionColumns", ["campaign_id", "device_type"]),
            f"{RULE}.v1.aggregation.dimensionColumns[1]",
            "'device_type' is not a column of table impressions",
        ),
        (
            _set("dimensionColumns", ["hashed_email"]),
            f"{RULE}.v1.aggregation.dimensionColumns",
            "both a join column and a dimension column",
        ),
        (
            lambda r: r.update({"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"]}}}),
            f"{RULE}.v1.custom.allowedAnalysisProviders",
            "required when allowedAnalyses contains ANY_QUERY",
        ),
        (
            lambda r: r.update({"v1": {"custom": {"allowedAnalyses": ["SOME_QUERY"]}}}),
            f"{RULE}.v1.custom.allowedAnalyses[0]",
            "pattern",
        ),
    ],
    ids=[
        "unknown-scalar-function",
        "minimum-below-two",
        "unknown-member",
        "missing-required-member",
        "two-rule-types",
        "column-not-in-the-table",
        "join-and-dimension",
        "any-query-without-providers",
        "bad-template-arn",
    ],
)
def test_a_malformed_rule_is_refused_naming_the_file_and_field(
    tmp_path: Path, change: Change, key: str, reason: str
) -> None:
    rule = aggregation()
    change(rule)
    message = refusal(tmp_path, with_rule(rule))
    line = next((ln for ln in message.splitlines() if f": {key}:" in ln), None)
    assert line is not None, message
    assert reason.lower() in line.lower()


def test_a_rule_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, with_rule(["aggregation"]))
    assert f"{RULE}: " in message


def test_a_table_owner_must_be_a_member(tmp_path: Path) -> None:
    world = example_world()
    world["collaborations"][0]["tables"][1]["creatorAccountId"] = "333333333333"
    message = refusal(tmp_path, world)
    assert "collaborations[0].tables[1].creatorAccountId: is not a member" in message
