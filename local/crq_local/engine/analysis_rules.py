"""Analysis rules in the collaboration file: the API's own policy shapes, checked when it loads.

A table's `analysisRule:` is exactly the `analysisRulePolicy` of Clean Rooms'
`CreateConfiguredTableAnalysisRule` (`ConfiguredTableAnalysisRulePolicy`: `{v1: {aggregation |
list | custom: {...}}}`), so a policy copied from `aws cleanrooms
get-configured-table-analysis-rule` works unchanged. It is checked against botocore's model
(crq.spec.apimodel.check_shape: required members, enums, patterns, ranges, unions), then against the
table: every column a rule names must be one the table exposes. rule_checks.py enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crq.spec.apimodel import check_shape

if TYPE_CHECKING:
    from .config import EngineConfig, Table

POLICY_SHAPE = "ConfiguredTableAnalysisRulePolicy"
TYPES = {"aggregation": "AGGREGATION", "list": "LIST", "custom": "CUSTOM"}


@dataclass(frozen=True)
class TableRule:
    """One table's analysis rule: its type and the body of the policy (the v1 member's value)."""

    table: str
    type: str  # AGGREGATION | LIST | CUSTOM
    body: dict[str, Any]
    policy: dict[str, Any]  # as written: {"v1": {"aggregation": {...}}}

    def columns(self, key: str) -> list[str]:
        return [str(c) for c in self.body.get(key, [])]


def rule_of(table: Table) -> TableRule | None:
    """The table's rule (the file has been checked, so the shape is right), or None."""
    if table.analysisRule is None:
        return None
    kind, body = next(iter(table.analysisRule["v1"].items()))
    return TableRule(table.name, TYPES[kind], body, table.analysisRule)


def check_rules(
    config: EngineConfig, columns_of: dict[tuple[int, int], list[str] | None]
) -> list[tuple[str, str]]:
    """Problems (key path, reason) with the tables' rules. `columns_of[(ci, ti)]`: the
    columns a table exposes, or None when unknown (an S3 table without `columns`)."""
    problems: list[tuple[str, str]] = []
    for ci, c in enumerate(config.collaborations):
        for ti, t in enumerate(c.tables):
            if t.analysisRule is None:
                continue
            key = f"collaborations[{ci}].tables[{ti}].analysisRule"
            errors = check_shape(POLICY_SHAPE, t.analysisRule, path=key)
            if errors:
                problems += [(e.field, e.message) for e in errors]
                continue
            rule = rule_of(t)
            assert rule is not None
            problems += _check_body(rule, key, columns_of.get((ci, ti)))
    return problems


def _check_body(rule: TableRule, key: str, exposed: list[str] | None) -> list[tuple[str, str]]:
    kind = next(iter(rule.policy["v1"]))
    base = f"{key}.v1.{kind}"
    named: list[tuple[str, str]] = []  # (key path, column)
    for member in ("joinColumns", "dimensionColumns", "listColumns", "disallowedOutputColumns"):
        named += [(f"{base}.{member}[{i}]", c) for i, c in enumerate(rule.columns(member))]
    for i, agg in enumerate(rule.body.get("aggregateColumns", [])):
        named += [
            (f"{base}.aggregateColumns[{i}].columnNames[{j}]", c)
            for j, c in enumerate(agg["columnNames"])
        ]
    for i, oc in enumerate(rule.body.get("outputConstraints", [])):
        named.append((f"{base}.outputConstraints[{i}].columnName", oc["columnName"]))
    dp = rule.body.get("differentialPrivacy", {})
    for i, col in enumerate(dp.get("columns", [])):
        named.append((f"{base}.differentialPrivacy.columns[{i}].name", col["name"]))
    problems = []
    if exposed is not None:
        lower = {c.lower() for c in exposed}
        problems += [
            (where, f"{column!r} is not a column of table {rule.table}")
            for where, column in named
            if column.lower() not in lower
        ]
    if rule.type == "AGGREGATION":
        overlap = set(rule.columns("joinColumns")) & set(rule.columns("dimensionColumns"))
        if overlap:
            problems.append(
                (
                    f"{base}.dimensionColumns",
                    f"{', '.join(sorted(overlap))}: a column cannot be both a join column and "
                    "a dimension column (join columns are never output)",
                )
            )
    if rule.type == "CUSTOM":
        allowed = rule.columns("allowedAnalyses")
        if "ANY_QUERY" in allowed and not rule.body.get("allowedAnalysisProviders"):
            problems.append(
                (
                    f"{base}.allowedAnalysisProviders",
                    "is required when allowedAnalyses contains ANY_QUERY",
                )
            )
    return problems


def api_rule_shape(rule: TableRule, collaboration_id: str, created: Any) -> dict[str, Any]:
    """The `AnalysisRule` of GetSchemaAnalysisRule / BatchGetSchemaAnalysisRule."""
    return {
        "collaborationId": collaboration_id,
        "type": rule.type,
        "name": rule.table,
        "createTime": created,
        "updateTime": created,
        "policy": rule.policy,
    }
