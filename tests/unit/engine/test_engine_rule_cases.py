"""Analysis rules and dialects, case by case: a query, the tables' rules, and either the rows
Clean Rooms would return or the refusal (MALFORMED_QUERY, naming the rule, table and column).

Each case runs the engine's real path below the API: the collaboration file is parsed and
checked, the query planned (dialect.py, rule_checks.py) and executed in DuckDB (execution.py).
tests/integration/engine/test_engine_analysis_rules.py drives the same through boto3.

The data (one impression per person; one purchase per buyer):
  impressions (the caller's): u01-u10 campaign c1, u11-u12 campaign c2;
                              u01-u05 channel tv, u06-u12 web; device_type is private
  purchases (the retailer's): u01-u04 shoes (10, 20, 30, 40), u05-u06 hats (50, 60),
                              x99 hats (5); store_id is private
  segments (the caller's):    u01-u04 sports, u05-u12 news
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from crq_local.engine.config import parse_config
from crq_local.engine.execution import Execution, QueryFailed
from crq_local.engine.params import bind
from crq_local.engine.query_plan import Planner
from crq_local.engine.tables import TableSource
from crq_local.engine.world import World

CALLER, RETAILER = "111111111111", "222222222222"
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
TEMPLATE_ID = "3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64"
TEMPLATE_ARN = (
    f"arn:aws:cleanrooms:us-east-1:{CALLER}:membership/{MEMBERSHIP}/analysistemplate/{TEMPLATE_ID}"
)
OTHER_ARN = TEMPLATE_ARN.replace("3d9a7c15", "4e9a7c15")
USERS = [f"u{n:02d}" for n in range(1, 13)]


def write_data(folder: Path) -> None:
    impressions = ["hashed_email,campaign_id,channel,impression_date,device_type"]
    for i, user in enumerate(USERS):
        campaign = "c1" if i < 10 else "c2"
        channel = "tv" if i < 5 else "web"
        impressions.append(f"{user},{campaign},{channel},2026-01-{i + 1:02d},phone")
    purchases = ["hashed_email,amount,category,purchase_date,store_id"]
    for i, user in enumerate(USERS[:6]):
        category = "shoes" if i < 4 else "hats"
        purchases.append(f"{user},{(i + 1) * 10},{category},2026-02-{i + 1:02d},{i % 2}")
    purchases.append("x99,5,hats,2026-02-20,1")
    segments = ["hashed_email,segment"] + [
        f"{u},{'sports' if i < 4 else 'news'}" for i, u in enumerate(USERS)
    ]
    for name, lines in (
        ("impressions", impressions),
        ("purchases", purchases),
        ("segments", segments),
    ):
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")


# ---- rules, in the API's shapes ---------------------------------------------------------


def aggregation(**body: Any) -> dict[str, Any]:
    return {"v1": {"aggregation": body}}


def listing(**body: Any) -> dict[str, Any]:
    return {"v1": {"list": body}}


def custom(**body: Any) -> dict[str, Any]:
    return {"v1": {"custom": body}}


FUNCTIONS = ["LOWER", "UPPER", "ROUND", "CAST", "DATEADD", "COALESCE", "TRUNC", "EXTRACT"]
IMP_AGG = aggregation(
    aggregateColumns=[
        {"columnNames": ["hashed_email"], "function": "COUNT_DISTINCT"},
        {"columnNames": ["hashed_email"], "function": "COUNT"},
    ],
    joinColumns=["hashed_email"],
    dimensionColumns=["campaign_id", "channel", "impression_date"],
    scalarFunctions=FUNCTIONS,
    outputConstraints=[{"columnName": "hashed_email", "minimum": 3, "type": "COUNT_DISTINCT"}],
)
PUR_AGG = aggregation(
    aggregateColumns=[
        {"columnNames": ["amount"], "function": "SUM"},
        {"columnNames": ["amount"], "function": "AVG"},
        {"columnNames": ["hashed_email"], "function": "COUNT_DISTINCT"},
    ],
    joinColumns=["hashed_email"],
    joinRequired="QUERY_RUNNER",
    dimensionColumns=["category", "purchase_date"],
    scalarFunctions=FUNCTIONS,
    outputConstraints=[{"columnName": "hashed_email", "minimum": 2, "type": "COUNT_DISTINCT"}],
)
PUR_LIST = listing(joinColumns=["hashed_email"], listColumns=["category", "purchase_date"])
SEG_LIST = listing(joinColumns=["hashed_email"], listColumns=["segment"])
ANY = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [CALLER]}
PUR_CUSTOM = custom(**ANY, disallowedOutputColumns=["hashed_email"])


def changed(policy: dict[str, Any], **members: Any) -> dict[str, Any]:
    """A copy of a policy with some members of its body replaced."""
    out = copy.deepcopy(policy)
    body = next(iter(out["v1"].values()))
    body.update(members)
    return out


def with_minimum(policy: dict[str, Any], minimum: int) -> dict[str, Any]:
    constraints = [{"columnName": "hashed_email", "minimum": minimum, "type": "COUNT_DISTINCT"}]
    return changed(policy, outputConstraints=constraints)


# ---- the case table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[tuple[Any, ...]] | None = None  # expected rows (in order)
    unordered: bool = False  # compare rows as a set (list queries cannot ORDER BY)
    refused: tuple[str, ...] = ()  # every fragment must be in the MALFORMED_QUERY message
    engine: str = "SPARK"
    template: bool = False  # run `sql` as the analysis template TEMPLATE_ARN
    parameters: dict[str, str] = field(default_factory=dict)
    receivers: tuple[str, ...] = (CALLER,)


JOIN = "FROM impressions i JOIN purchases p ON i.hashed_email = p.hashed_email"
LIST_JOIN = "FROM purchases p JOIN segments s ON p.hashed_email = s.hashed_email"
AGG = {"impressions": IMP_AGG}
AGG2 = {"impressions": IMP_AGG, "purchases": PUR_AGG}
LIST2 = {"purchases": PUR_LIST, "segments": SEG_LIST}

CASES = [
    # -- aggregation: output constraints (rows below the minimum removed, silently) ---------
    Case(
        "agg-small-campaign-suppressed",
        "SELECT campaign_id, COUNT(DISTINCT hashed_email) AS people FROM impressions "
        "GROUP BY campaign_id ORDER BY campaign_id",
        AGG,
        rows=[("c1", 10)],
    ),
    Case(
        "agg-groups-above-minimum-kept",
        "SELECT channel, COUNT(DISTINCT hashed_email) AS people FROM impressions "
        "GROUP BY channel ORDER BY channel",
        AGG,
        rows=[("tv", 5), ("web", 7)],
    ),
    Case(
        "agg-higher-minimum-removes-more",
        "SELECT channel, COUNT(DISTINCT hashed_email) AS people FROM impressions "
        "GROUP BY channel ORDER BY channel",
        {"impressions": with_minimum(IMP_AGG, 6)},
        rows=[("web", 7)],
    ),
    Case(
        "agg-global-aggregate",
        "SELECT COUNT(DISTINCT hashed_email) AS people FROM impressions",
        AGG,
        rows=[(12,)],
    ),
    Case(
        "agg-global-aggregate-below-minimum-is-empty",
        "SELECT COUNT(DISTINCT hashed_email) AS people FROM impressions",
        {"impressions": with_minimum(IMP_AGG, 13)},
        rows=[],
    ),
    Case(
        "agg-constraint-counts-people-not-rows",
        "SELECT channel, COUNT(hashed_email) AS n FROM impressions WHERE channel = 'tv' "
        "GROUP BY channel",
        {"impressions": with_minimum(IMP_AGG, 6)},
        rows=[],
    ),
    Case(
        "agg-user-having-kept-with-constraint",
        "SELECT channel, COUNT(DISTINCT hashed_email) AS n FROM impressions GROUP BY channel "
        "HAVING COUNT(DISTINCT hashed_email) > 5",
        AGG,
        rows=[("web", 7)],
    ),
    Case(
        "agg-dimension-in-where",
        "SELECT COUNT(DISTINCT hashed_email) AS n FROM impressions WHERE channel = 'tv'",
        AGG,
        rows=[(5,)],
    ),
    # -- aggregation: aggregate functions and columns -------------------------------------
    Case(
        "agg-count-star-refused",
        "SELECT channel, COUNT(*) AS n FROM impressions GROUP BY channel",
        AGG,
        refused=("AGGREGATION rule of table impressions", "COUNT(*)", "single column"),
    ),
    Case(
        "agg-function-not-allowed",
        "SELECT channel, MIN(impression_date) AS first FROM impressions GROUP BY channel",
        AGG,
        refused=("AGGREGATION rule of table impressions", "MIN(", "not an allowed aggregate"),
    ),
    Case(
        "agg-column-not-aggregatable",
        "SELECT channel, COUNT(DISTINCT campaign_id) AS n FROM impressions GROUP BY channel",
        AGG,
        refused=("table impressions", "column campaign_id", "COUNT_DISTINCT"),
    ),
    Case(
        "agg-function-not-allowed-on-column",
        "SELECT channel, SUM(hashed_email) AS n FROM impressions GROUP BY channel",
        AGG,
        refused=("table impressions", "column hashed_email", "SUM"),
    ),
    Case(
        "agg-sum-distinct-needs-its-own-entry",
        "SELECT p.category, SUM(DISTINCT p.amount) AS s " + JOIN + " GROUP BY p.category",
        AGG2,
        refused=("table purchases", "column amount", "SUM_DISTINCT"),
    ),
    Case(
        "agg-no-aggregate-refused",
        "SELECT channel FROM impressions GROUP BY channel",
        AGG,
        refused=("AGGREGATION rule of table impressions", "at least one aggregate"),
    ),
    Case(
        "agg-aggregate-of-expression-refused",
        "SELECT channel, SUM(LENGTH(hashed_email)) AS n FROM impressions GROUP BY channel",
        AGG,
        refused=("AGGREGATION rule", "single column"),
    ),
    # -- aggregation: dimension and join columns where they belong -------------------------
    Case(
        "agg-join-column-not-output",
        "SELECT hashed_email, COUNT(DISTINCT hashed_email) AS n FROM impressions "
        "GROUP BY hashed_email",
        AGG,
        refused=("table impressions", "column hashed_email", "SELECT", "join column"),
    ),
    Case(
        "agg-private-column-in-where",
        "SELECT COUNT(DISTINCT hashed_email) AS n FROM impressions WHERE device_type = 'phone'",
        AGG,
        refused=("table impressions", "column device_type", "WHERE", "not a dimension column"),
    ),
    Case(
        "agg-non-dimension-in-group-by",
        "SELECT COUNT(DISTINCT hashed_email) AS n FROM impressions GROUP BY device_type",
        AGG,
        refused=("column device_type", "GROUP BY"),
    ),
    Case(
        "agg-non-dimension-in-order-by",
        "SELECT channel, COUNT(DISTINCT hashed_email) AS n FROM impressions GROUP BY channel "
        "ORDER BY device_type",
        AGG,
        refused=("column device_type", "ORDER BY"),
    ),
    Case(
        "agg-order-by-output-alias",
        "SELECT channel, COUNT(DISTINCT hashed_email) AS n FROM impressions GROUP BY channel "
        "ORDER BY n DESC",
        AGG,
        rows=[("web", 7), ("tv", 5)],
    ),
    # -- aggregation: scalar functions -------------------------------------------------------
    Case(
        "agg-allowed-scalar-function",
        "SELECT UPPER(channel) AS c, COUNT(DISTINCT hashed_email) AS n FROM impressions "
        "GROUP BY UPPER(channel) ORDER BY c",
        AGG,
        rows=[("TV", 5), ("WEB", 7)],
    ),
    Case(
        "agg-scalar-function-not-listed",
        "SELECT CONCAT(channel, '!') AS c, COUNT(DISTINCT hashed_email) AS n FROM impressions "
        "GROUP BY CONCAT(channel, '!')",
        AGG,
        refused=("AGGREGATION rule of table impressions", "scalar function", "not allowed"),
    ),
    Case(
        "agg-scalar-function-removed-from-list",
        "SELECT UPPER(channel) AS c, COUNT(DISTINCT hashed_email) AS n FROM impressions "
        "GROUP BY UPPER(channel)",
        {"impressions": changed(IMP_AGG, scalarFunctions=["LOWER"])},
        refused=("scalar function UPPER", "scalarFunctions: LOWER"),
    ),
    Case(
        "agg-scalar-allowed-by-one-table-only",
        "SELECT UPPER(p.category) AS c, COUNT(DISTINCT i.hashed_email) AS n "
        + JOIN
        + " GROUP BY UPPER(p.category)",
        {"impressions": IMP_AGG, "purchases": changed(PUR_AGG, scalarFunctions=["ROUND"])},
        refused=("table purchases", "scalar function UPPER"),
    ),
    Case(
        "agg-round-of-an-aggregate",
        "SELECT channel, ROUND(COUNT(DISTINCT hashed_email) / 2, 1) AS half FROM impressions "
        "GROUP BY channel ORDER BY channel",
        AGG,
        rows=[("tv", 2.5), ("web", 3.5)],
    ),
    # -- aggregation: query structure ------------------------------------------------------
    Case(
        "agg-cte-refused",
        "WITH x AS (SELECT channel, hashed_email FROM impressions) "
        "SELECT channel, COUNT(DISTINCT hashed_email) FROM x GROUP BY channel",
        AGG,
        refused=("AGGREGATION rule of table impressions", "WITH"),
    ),
    Case(
        "agg-subquery-refused",
        "SELECT COUNT(DISTINCT hashed_email) AS n FROM impressions "
        "WHERE channel IN (SELECT channel FROM impressions)",
        AGG,
        refused=("AGGREGATION rule of table impressions", "subqueries"),
    ),
    Case(
        "agg-union-refused",
        "SELECT COUNT(DISTINCT hashed_email) FROM impressions UNION ALL "
        "SELECT COUNT(DISTINCT hashed_email) FROM impressions",
        AGG,
        refused=("single SELECT",),
    ),
    Case(
        "agg-window-refused",
        "SELECT channel, COUNT(DISTINCT hashed_email) OVER (PARTITION BY channel) AS n "
        "FROM impressions",
        AGG,
        refused=("window functions",),
    ),
    Case("agg-select-star-refused", "SELECT * FROM impressions", AGG, refused=("SELECT *",)),
    # -- aggregation: joins -----------------------------------------------------------------
    Case(
        "agg-join-most-restrictive-minimum",
        "SELECT p.category, COUNT(DISTINCT i.hashed_email) AS people, SUM(p.amount) AS revenue "
        + JOIN
        + " GROUP BY p.category ORDER BY p.category",
        AGG2,
        rows=[("shoes", 4, 100)],  # hats: 2 people, below impressions' minimum of 3
    ),
    Case(
        "agg-join-higher-minimum-of-the-other-table",
        "SELECT p.category, COUNT(DISTINCT i.hashed_email) AS people "
        + JOIN
        + " GROUP BY p.category",
        {"impressions": IMP_AGG, "purchases": with_minimum(PUR_AGG, 5)},
        rows=[],
    ),
    Case(
        "agg-join-avg-of-retailer-amount",
        "SELECT p.category, AVG(p.amount) AS average " + JOIN + " GROUP BY p.category",
        AGG2,
        rows=[("shoes", 25.0)],
    ),
    Case(
        "agg-left-join-refused",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n FROM impressions i "
        "LEFT JOIN purchases p ON i.hashed_email = p.hashed_email",
        AGG2,
        refused=("table purchases", "only INNER JOIN", "LEFT"),
    ),
    Case(
        "agg-comma-join-refused",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n FROM impressions i, purchases p "
        "WHERE i.hashed_email = p.hashed_email",
        AGG2,
        refused=("only INNER JOIN",),
    ),
    Case(
        "agg-join-on-non-join-column",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n FROM impressions i "
        "JOIN purchases p ON i.campaign_id = p.category",
        AGG2,
        refused=("column campaign_id", "JOIN", "join columns"),
    ),
    Case(
        "agg-join-non-equality-refused",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n FROM impressions i "
        "JOIN purchases p ON i.hashed_email <> p.hashed_email",
        AGG2,
        refused=("only compare join columns with '='",),
    ),
    Case(
        "agg-join-or-not-allowed-by-default",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n FROM impressions i "
        "JOIN purchases p ON (i.hashed_email = p.hashed_email OR i.hashed_email = p.hashed_email)",
        AGG2,
        refused=("OR is not an allowed join operator",),
    ),
    Case(
        "agg-join-or-allowed-by-both",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n FROM impressions i "
        "JOIN purchases p ON (i.hashed_email = p.hashed_email OR i.hashed_email = p.hashed_email)",
        {
            "impressions": changed(IMP_AGG, allowedJoinOperators=["AND", "OR"]),
            "purchases": changed(PUR_AGG, allowedJoinOperators=["OR"]),
        },
        rows=[(6,)],
    ),
    Case(
        "agg-join-or-allowed-by-one-only",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n FROM impressions i "
        "JOIN purchases p ON (i.hashed_email = p.hashed_email OR i.hashed_email = p.hashed_email)",
        {"impressions": changed(IMP_AGG, allowedJoinOperators=["OR"]), "purchases": PUR_AGG},
        refused=("OR is not an allowed join operator",),
    ),
    Case(
        "agg-join-required-not-met",
        "SELECT category, SUM(amount) AS revenue FROM purchases GROUP BY category",
        {"purchases": PUR_AGG},
        refused=("AGGREGATION rule of table purchases", "joined with a table of the query runner"),
    ),
    Case(
        "agg-join-required-met",
        "SELECT p.category, SUM(p.amount) AS revenue " + JOIN + " GROUP BY p.category",
        AGG2,
        rows=[("shoes", 100)],
    ),
    Case(
        "agg-private-column-of-other-table",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n " + JOIN + " WHERE p.store_id = 1",
        AGG2,
        refused=("AGGREGATION rule of table purchases", "column store_id"),
    ),
    Case(
        "agg-additional-analyses-required",
        "SELECT COUNT(DISTINCT hashed_email) AS n FROM impressions",
        {"impressions": changed(IMP_AGG, additionalAnalyses="REQUIRED")},
        refused=("table impressions", "additionalAnalyses is REQUIRED"),
    ),
    Case(
        "agg-template-refused",
        "SELECT COUNT(DISTINCT hashed_email) AS n FROM impressions",
        AGG,
        template=True,
        refused=("AGGREGATION rule of table impressions", "CUSTOM"),
    ),
    # -- rule types across tables -------------------------------------------------------------
    Case(
        "mixed-rule-types-refused",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n " + JOIN,
        {"impressions": IMP_AGG, "purchases": PUR_LIST},
        refused=("differ in type", "impressions (AGGREGATION)", "purchases (LIST)"),
    ),
    Case(
        "ruled-with-unruled-refused",
        "SELECT COUNT(DISTINCT i.hashed_email) AS n " + JOIN,
        {"impressions": IMP_AGG},
        refused=("table purchases has no analysis rule",),
    ),
    Case(
        "no-rules-open",
        "SELECT device_type, COUNT(*) AS n FROM impressions GROUP BY device_type",
        rows=[("phone", 12)],
    ),
    # -- list ------------------------------------------------------------------------------
    Case(
        "list-overlap",
        "SELECT DISTINCT p.category, s.segment " + LIST_JOIN,
        LIST2,
        rows=[("shoes", "sports"), ("hats", "news")],
        unordered=True,
    ),
    Case(
        "list-where-on-list-column",
        "SELECT DISTINCT p.category, s.segment " + LIST_JOIN + " WHERE p.category = 'shoes'",
        LIST2,
        rows=[("shoes", "sports")],
    ),
    Case(
        "list-where-on-join-column",
        "SELECT DISTINCT s.segment " + LIST_JOIN + " WHERE p.hashed_email = 'u05'",
        LIST2,
        rows=[("news",)],
    ),
    Case(
        "list-limit",
        "SELECT DISTINCT p.purchase_date " + LIST_JOIN + " WHERE p.category = 'shoes' LIMIT 1",
        LIST2,
        refused=(),
        rows=None,
    ),
    Case(
        "list-needs-distinct",
        "SELECT p.category " + LIST_JOIN,
        LIST2,
        refused=("LIST rule of table purchases", "DISTINCT"),
    ),
    Case(
        "list-non-list-column",
        "SELECT DISTINCT p.amount " + LIST_JOIN,
        LIST2,
        refused=("LIST rule of table purchases", "column amount", "not a list column"),
    ),
    Case(
        "list-join-column-not-output",
        "SELECT DISTINCT p.hashed_email " + LIST_JOIN,
        LIST2,
        refused=("LIST rule of table purchases", "column hashed_email", "SELECT"),
    ),
    Case(
        "list-where-private-column",
        "SELECT DISTINCT p.category " + LIST_JOIN + " WHERE p.amount > 10",
        LIST2,
        refused=("LIST rule of table purchases", "column amount", "WHERE"),
    ),
    Case(
        "list-aggregation-refused",
        "SELECT DISTINCT p.category, COUNT(s.segment) " + LIST_JOIN,
        LIST2,
        refused=("LIST rule", "aggregate function"),
    ),
    Case(
        "list-scalar-function-refused",
        "SELECT DISTINCT UPPER(p.category) " + LIST_JOIN,
        LIST2,
        refused=("LIST rule", "scalar function", "mathematical operators"),
    ),
    Case(
        "list-order-by-refused",
        "SELECT DISTINCT p.category " + LIST_JOIN + " ORDER BY p.category",
        LIST2,
        refused=("ORDER BY is not allowed",),
    ),
    Case(
        "list-join-required",
        "SELECT DISTINCT category FROM purchases",
        {"purchases": PUR_LIST},
        refused=("LIST rule of table purchases", "joined with a table of the query runner"),
    ),
    Case(
        "list-join-on-non-join-column",
        "SELECT DISTINCT p.category FROM purchases p JOIN segments s ON p.category = s.segment",
        LIST2,
        refused=("column category", "JOIN"),
    ),
    Case(
        "list-left-join-refused",
        "SELECT DISTINCT p.category FROM purchases p LEFT JOIN segments s "
        "ON p.hashed_email = s.hashed_email",
        LIST2,
        refused=("only INNER JOIN",),
    ),
    # -- custom ----------------------------------------------------------------------------
    Case(
        "custom-any-query",
        "SELECT category, SUM(amount) AS revenue FROM purchases GROUP BY category "
        "ORDER BY category",
        {"purchases": PUR_CUSTOM},
        rows=[("hats", 115), ("shoes", 100)],
    ),
    Case(
        "custom-direct-sql-not-allowed",
        "SELECT category FROM purchases",
        {"purchases": custom(allowedAnalyses=[TEMPLATE_ARN])},
        refused=("CUSTOM rule of table purchases", "direct SQL from account 111111111111"),
    ),
    Case(
        "custom-provider-not-listed",
        "SELECT category FROM purchases",
        {"purchases": custom(allowedAnalyses=["ANY_QUERY"], allowedAnalysisProviders=[RETAILER])},
        refused=("CUSTOM rule of table purchases", "allowedAnalysisProviders: 222222222222"),
    ),
    Case(
        "custom-template-allowed-by-arn",
        "SELECT category, COUNT(*) AS n FROM purchases WHERE amount >= :least "
        "GROUP BY category ORDER BY category",
        {"purchases": custom(allowedAnalyses=[TEMPLATE_ARN])},
        template=True,
        parameters={"least": "30"},
        rows=[("hats", 2), ("shoes", 2)],
    ),
    Case(
        "custom-template-not-allowed",
        "SELECT category, COUNT(*) AS n FROM purchases WHERE amount >= :least GROUP BY category",
        {"purchases": custom(allowedAnalyses=[OTHER_ARN])},
        template=True,
        parameters={"least": "30"},
        refused=("CUSTOM rule of table purchases", f"analysis template {TEMPLATE_ARN}"),
    ),
    Case(
        "custom-template-by-allowed-provider",
        "SELECT COUNT(*) AS n FROM purchases WHERE amount >= :least",
        {"purchases": custom(**ANY)},
        template=True,
        parameters={"least": "60"},
        rows=[(1,)],
    ),
    Case(
        "custom-disallowed-output-column",
        "SELECT hashed_email, amount FROM purchases",
        {"purchases": PUR_CUSTOM},
        refused=("CUSTOM rule of table purchases", "column hashed_email", "disallowed output"),
    ),
    Case(
        "custom-disallowed-output-through-cte",
        "WITH buyers AS (SELECT hashed_email AS who, amount FROM purchases) SELECT who FROM buyers",
        {"purchases": PUR_CUSTOM},
        refused=("column hashed_email", "disallowed output"),
    ),
    Case(
        "custom-disallowed-output-through-subquery",
        "SELECT b.e FROM (SELECT UPPER(hashed_email) AS e FROM purchases) b",
        {"purchases": PUR_CUSTOM},
        refused=("column hashed_email", "disallowed output"),
    ),
    Case(
        "custom-disallowed-output-by-star",
        "SELECT * FROM purchases",
        {"purchases": PUR_CUSTOM},
        refused=("column hashed_email", "disallowed output"),
    ),
    Case(
        "custom-disallowed-column-aggregated-is-fine",
        "SELECT COUNT(DISTINCT hashed_email) AS buyers FROM purchases",
        {"purchases": PUR_CUSTOM},
        rows=[(7,)],
    ),
    Case(
        "custom-disallowed-column-in-where-is-fine",
        "WITH b AS (SELECT category FROM purchases WHERE hashed_email = 'x99') SELECT * FROM b",
        {"purchases": PUR_CUSTOM},
        rows=[("hats",)],
    ),
    Case(
        "custom-most-restrictive-across-tables",
        "SELECT COUNT(*) AS n FROM purchases p JOIN segments s ON p.hashed_email = s.hashed_email",
        {"purchases": custom(allowedAnalyses=[TEMPLATE_ARN]), "segments": custom(**ANY)},
        refused=("CUSTOM rule of table purchases",),
    ),
    Case(
        "custom-differential-privacy-not-emulated",
        "SELECT COUNT(*) AS n FROM purchases",
        {"purchases": custom(**ANY, differentialPrivacy={"columns": [{"name": "hashed_email"}]})},
        refused=("table purchases", "differentialPrivacy", "does not emulate differential privacy"),
    ),
    Case(
        "custom-aggregation-thresholds-not-emulated",
        "SELECT category, COUNT(*) AS n FROM purchases GROUP BY category",
        {
            "purchases": custom(
                **ANY,
                aggregationThresholds=[
                    {
                        "identityColumns": ["hashed_email"],
                        "minimumIdentityCount": 5,
                        "type": "COUNT_DISTINCT",
                        "allowedAggregateExpressionType": "COLUMNS_ONLY",
                    }
                ],
            )
        },
        refused=("table purchases", "aggregationThresholds", "does not emulate"),
    ),
    Case(
        "custom-comparison-controls-not-emulated",
        "SELECT COUNT(*) AS n FROM purchases WHERE category = 'hats'",
        {
            "purchases": custom(
                **ANY,
                comparisonControls={
                    "allowedLiteralComparisonColumns": ["category"],
                    "allowedColumnComparisonColumns": ["hashed_email"],
                },
            )
        },
        refused=("table purchases", "comparisonControls", "does not emulate"),
    ),
    Case(
        "custom-result-receiver-not-allowed",
        "SELECT COUNT(*) AS n FROM purchases",
        {"purchases": custom(**ANY, allowedResultReceivers=[RETAILER])},
        refused=("table purchases", "account 111111111111 may not receive results"),
    ),
    Case(
        "custom-result-receiver-allowed",
        "SELECT COUNT(*) AS n FROM purchases",
        {"purchases": custom(**ANY, allowedResultReceivers=[RETAILER])},
        receivers=(RETAILER,),
        rows=[(7,)],
    ),
    Case(
        "custom-additional-analyses-required",
        "SELECT COUNT(*) AS n FROM purchases",
        {"purchases": custom(**ANY, additionalAnalyses="REQUIRED")},
        refused=("CUSTOM rule of table purchases", "additionalAnalyses is REQUIRED"),
    ),
    # -- dialects: Spark SQL ------------------------------------------------------------------
    Case(
        "spark-date-functions",
        "SELECT date_add(DATE '2026-01-10', 3) AS d, date_sub(DATE '2026-01-10', 1) AS e, "
        "datediff(DATE '2026-01-10', DATE '2026-01-01') AS n",
        rows=[(date(2026, 1, 13), date(2026, 1, 9), 9)],
    ),
    Case(
        "spark-string-functions",
        "SELECT concat_ws('-', 'a', 'b') AS s, nvl(NULL, 'x') AS v, "
        "date_format(DATE '2026-03-05', 'yyyy-MM') AS m",
        rows=[("a-b", "x", "2026-03")],
    ),
    Case(
        "spark-approx-count-distinct",
        "SELECT approx_count_distinct(channel) AS channels FROM impressions",
        rows=[(2,)],
    ),
    Case(
        "spark-backtick-identifiers-and-lateral-alias",
        "SELECT `channel`, count(1) AS n FROM impressions GROUP BY `channel` ORDER BY `channel`",
        rows=[("tv", 5), ("web", 7)],
    ),
    Case(
        "spark-date-add-under-aggregation-rule",
        "SELECT date_add(impression_date, 1) AS d, COUNT(DISTINCT hashed_email) AS n "
        "FROM impressions WHERE channel = 'tv' GROUP BY date_add(impression_date, 1)",
        {"impressions": IMP_AGG},
        rows=[],  # one person a day: every day is below the minimum of 3
    ),
    Case(
        "spark-cluster-by-not-translatable",
        "SELECT channel FROM impressions CLUSTER BY channel",
        refused=("Spark SQL CLUSTER BY cannot be translated",),
    ),
    Case(
        "spark-function-without-translation",
        "SELECT sha2('a', 512) AS h",
        refused=("cannot be translated", "SHA256"),
    ),
    Case(
        "spark-optimizer-hints-ignored",
        "SELECT /*+ BROADCAST(p) */ COUNT(*) AS n FROM impressions i "
        "JOIN purchases p ON i.hashed_email = p.hashed_email",
        rows=[(6,)],
    ),
    Case(
        "spark-syntax-error",
        "SELECT channel FROM impressions WHERE",
        refused=("Spark SQL syntax error",),
    ),
    Case(
        "spark-parameter-in-direct-sql",
        "SELECT :since AS s",
        refused=(":since", "only allowed in analysis templates"),
    ),
    Case(
        "spark-template-parameter-bound-as-value",
        "SELECT category FROM purchases WHERE category = :name ORDER BY category",
        template=True,
        parameters={"name": "hats' OR '1'='1"},
        rows=[],
    ),
    # -- dialects: Clean Rooms SQL (Redshift's dialect) ------------------------------------------
    Case(
        "crsql-date-functions",
        "SELECT DATEADD(day, 3, DATE '2026-01-10')::date AS d, "
        "DATEDIFF(day, DATE '2026-01-01', DATE '2026-01-10') AS n, NVL(NULL, 1) AS v, "
        "LEN('abc') AS l",
        engine="CLEAN_ROOMS_SQL",
        rows=[(date(2026, 1, 13), 9, 1, 3)],
    ),
    Case(
        "crsql-convert-and-listagg",
        "SELECT CONVERT(INTEGER, '5') AS five, "
        "LISTAGG(segment, ',') WITHIN GROUP (ORDER BY segment) AS s "
        "FROM (SELECT DISTINCT segment FROM segments) x",
        engine="CLEAN_ROOMS_SQL",
        rows=[(5, "news,sports")],
    ),
    Case(
        "crsql-aggregation-rule",
        "SELECT channel, COUNT(DISTINCT hashed_email) AS n FROM impressions GROUP BY channel "
        "ORDER BY channel",
        AGG,
        engine="CLEAN_ROOMS_SQL",
        rows=[("tv", 5), ("web", 7)],
    ),
    Case(
        "crsql-getdate-not-in-scalar-functions",
        "SELECT channel, COUNT(DISTINCT hashed_email) AS n FROM impressions "
        "WHERE impression_date < GETDATE() GROUP BY channel",
        AGG,
        engine="CLEAN_ROOMS_SQL",
        refused=("scalar function GETDATE",),
    ),
    Case(
        "crsql-dateadd-allowed",
        "SELECT channel, COUNT(DISTINCT hashed_email) AS n FROM impressions "
        "WHERE impression_date < DATEADD(day, 3, DATE '2026-01-05') GROUP BY channel",
        AGG,
        engine="CLEAN_ROOMS_SQL",
        rows=[("tv", 5)],
    ),
    Case(
        "crsql-list-rule",
        "SELECT DISTINCT p.category " + LIST_JOIN + " WHERE s.segment = 'news'",
        LIST2,
        engine="CLEAN_ROOMS_SQL",
        rows=[("hats",)],
    ),
    Case(
        "crsql-syntax-error",
        "SELECT channel FROM impressions WHERE",
        engine="CLEAN_ROOMS_SQL",
        refused=("Clean Rooms SQL syntax error",),
    ),
]


# ---- running a case ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rule-data")
    write_data(folder)
    return folder


def world_of(case: Case, folder: Path) -> dict[str, Any]:
    tables = []
    for name, owner in (("impressions", CALLER), ("purchases", RETAILER), ("segments", CALLER)):
        table: dict[str, Any] = {"name": name, "path": f"{name}.csv", "creatorAccountId": owner}
        if name in case.rules:
            table["analysisRule"] = case.rules[name]
        tables.append(table)
    templates = []
    if case.template:
        declared = [
            {"name": p, "type": "INTEGER" if p == "least" else "STRING"} for p in case.parameters
        ]
        templates.append(
            {"name": "case", "id": TEMPLATE_ID, "sql": case.sql, "parameters": declared}
        )
    return {
        "accountId": CALLER,
        "collaborations": [
            {
                "name": "rules",
                "analyticsEngine": case.engine,
                "members": [
                    {
                        "accountId": CALLER,
                        "membershipId": MEMBERSHIP,
                        "abilities": ["CAN_QUERY", "CAN_RECEIVE_RESULTS"],
                    },
                    {"accountId": RETAILER, "abilities": ["CAN_RECEIVE_RESULTS"]},
                ],
                "tables": tables,
                "analysisTemplates": templates,
            }
        ],
    }


def run(case: Case, folder: Path) -> list[tuple[Any, ...]]:
    config = parse_config(world_of(case, folder), source=folder / "collaboration.yaml")
    world = World(config)
    membership = world.caller_membership(MEMBERSHIP)
    assert membership is not None
    template = world.templates_by_arn.get(TEMPLATE_ARN) if case.template else None
    values: dict[str, str] = {}
    if template is not None:
        values = bind(template.sql, template.parameters, case.parameters).values
    plan = Planner(config).plan(membership, case.sql, template, list(case.receivers))
    sources = [
        TableSource(t.name, config.resolve(t.path), "csv", None)
        for t in membership.collaboration.tables
    ]
    used = {k: v for k, v in values.items() if k in plan.parameters}
    rows = Execution().run(sources, plan.sql, used).to_pylist()
    return [tuple(r.values()) for r in rows]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_case(case: Case, data: Path) -> None:
    if case.refused:
        with pytest.raises(QueryFailed) as caught:
            run(case, data)
        assert caught.value.code == "MALFORMED_QUERY"
        for fragment in case.refused:
            assert fragment in caught.value.message
        return
    rows = run(case, data)
    if case.rows is None:  # only the shape is known (LIMIT picks any row)
        assert len(rows) == 1
    elif case.unordered:
        assert sorted(rows) == sorted(case.rows)
    else:
        assert rows == case.rows


def test_the_table_is_big_enough_and_covers_both_dialects() -> None:
    assert len(CASES) >= 60
    assert {c.engine for c in CASES} == {"SPARK", "CLEAN_ROOMS_SQL"}
    assert sum(1 for c in CASES if c.refused) >= 30 and sum(1 for c in CASES if not c.refused) >= 25
