"""Analysis rules through the API, as a boto3 or AWS CLI user meets them, in the example's
protected collaboration (impressions: aggregation rule, minimum 150 people per row;
purchases: custom rule allowing one analysis template, hashed_email never output).

A query the rules refuse is accepted by StartProtectedQuery and ends FAILED with
MALFORMED_QUERY (docs/engine.md cites why); output constraints leave rows out silently; the
schema operations answer with the rules, in the model's shapes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from test_engine_queries import impressions

from crq_local.engine.testing import Harness, MakeHarness, example_world, wait_until_idle

PROTECTED = "1e7b3c95-8d2f-4a61-b4c0-3f9e5a1d7c28"
COLLAB = "9c2e4f71-5a3b-4d8e-8f1c-6b0a2d7e9f43"
REVENUE_ARN = (
    f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{PROTECTED}"
    "/analysistemplate/5b8e2d47-1f9c-4e3a-9d60-8a7c4e2b1f05"
)
AWS_CLI = Path(sys.executable).parent / "aws"
REACH = (
    "SELECT campaign_id, channel, COUNT(DISTINCT hashed_email) AS people FROM impressions "
    "GROUP BY campaign_id, channel"
)


def reach_computed_independently() -> dict[tuple[str, str], int]:
    people: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in impressions():
        people[(row["campaign_id"], row["channel"])].add(row["hashed_email"])
    return {key: len(who) for key, who in people.items()}


def ended(harness: Harness, query_id: str) -> dict[str, Any]:
    """The query once the engine is idle, read as a client would (its membership's view)."""
    assert wait_until_idle(harness.engine, 10), "the engine did not go idle"
    return harness.get(query_id, membership=PROTECTED)


def test_groups_below_the_output_constraint_are_left_out_silently(shared: Harness) -> None:
    # Given the 16 campaign x channel groups, some with fewer than 150 people
    everything = reach_computed_independently()
    small = {k for k, n in everything.items() if n < 150}
    assert small and len(small) < len(everything)  # the data makes the point
    # When the aggregation runs
    query = ended(shared, shared.start(REACH, membership=PROTECTED))
    # Then it succeeded and only the groups of at least 150 people are in the result
    assert query["status"] == "SUCCESS"
    rows = shared.csv_rows(f"{query['id']}/result/result.csv")
    got = {(r["campaign_id"], r["channel"]): int(r["people"]) for r in rows}
    assert got == {k: n for k, n in everything.items() if k not in small}


def test_a_query_the_rule_refuses_ends_failed_naming_rule_table_and_column(
    shared: Harness,
) -> None:
    sql = "SELECT hashed_email, COUNT(hashed_email) AS n FROM impressions GROUP BY hashed_email"
    query = ended(shared, shared.start(sql, membership=PROTECTED))
    assert query["status"] == "FAILED"
    assert query["error"]["code"] == "MALFORMED_QUERY"
    message = query["error"]["message"]
    assert "AGGREGATION rule of table impressions" in message
    assert "column hashed_email" in message
    assert "join column" in message
    assert shared.keys(f"{query['id']}/") == []  # nothing written


def test_the_same_query_runs_where_the_table_has_no_rule(shared: Harness) -> None:
    sql = "SELECT hashed_email, COUNT(hashed_email) AS n FROM impressions GROUP BY hashed_email"
    assert shared.finish(shared.start(sql))["status"] == "SUCCESS"


def test_the_approved_template_reads_the_custom_table_and_direct_sql_does_not(
    shared: Harness,
) -> None:
    approved = ended(
        shared,
        shared.start(
            template=REVENUE_ARN, parameters={"since": "2026-03-01"}, membership=PROTECTED
        ),
    )
    assert approved["status"] == "SUCCESS"
    rows = shared.csv_rows(f"{approved['id']}/result/result.csv")
    assert rows and set(rows[0]) == {"category", "buyers", "revenue"}
    direct = ended(shared, shared.start("SELECT category FROM purchases", membership=PROTECTED))
    assert direct["status"] == "FAILED"
    assert "CUSTOM rule of table purchases" in direct["error"]["message"]
    assert "direct SQL from account 111111111111 is not allowed" in direct["error"]["message"]


def test_differential_privacy_is_refused_not_run_without_noise(make_harness: MakeHarness) -> None:
    world = example_world()
    purchases = world["collaborations"][1]["tables"][1]
    purchases["analysisRule"]["v1"]["custom"]["differentialPrivacy"] = {
        "columns": [{"name": "hashed_email"}]
    }
    harness = make_harness(world)
    query = ended(harness, harness.start(template=REVENUE_ARN, parameters={}, membership=PROTECTED))
    assert query["status"] == "FAILED"
    assert query["error"]["code"] == "MALFORMED_QUERY"
    assert "does not emulate differential privacy" in query["error"]["message"]


# ---- the schema operations ------------------------------------------------------------------


def test_get_schema_answers_the_allowed_columns_and_the_rule_type(shared: Harness) -> None:
    schema = shared.cleanrooms.get_schema(collaborationIdentifier=COLLAB, name="impressions")[
        "schema"
    ]
    assert schema["analysisRuleTypes"] == ["AGGREGATION"]
    assert schema["creatorAccountId"] == "111111111111"
    assert schema["type"] == "TABLE"
    assert [c["name"] for c in schema["columns"]] == [
        "hashed_email",
        "campaign_id",
        "impression_date",
        "channel",
    ]
    assert {c["name"]: c["type"] for c in schema["columns"]}["impression_date"] == "date"
    assert schema["schemaStatusDetails"][0]["status"] == "READY"


def test_list_schemas_pages_through_the_collaboration_tables(shared: Harness) -> None:
    pages = shared.cleanrooms.get_paginator("list_schemas").paginate(
        collaborationIdentifier=COLLAB, PaginationConfig={"PageSize": 1}
    )
    summaries = [s for page in pages for s in page["schemaSummaries"]]
    assert [(s["name"], s["analysisRuleTypes"], s["creatorAccountId"]) for s in summaries] == [
        ("impressions", ["AGGREGATION"], "111111111111"),
        ("purchases", ["CUSTOM"], "222222222222"),
    ]


def test_get_schema_analysis_rule_answers_the_policy_as_written(shared: Harness) -> None:
    rule = shared.cleanrooms.get_schema_analysis_rule(
        collaborationIdentifier=COLLAB, name="impressions", type="AGGREGATION"
    )["analysisRule"]
    written = example_world()["collaborations"][1]["tables"][0]["analysisRule"]
    assert rule["policy"] == written
    assert rule["type"] == "AGGREGATION" and rule["collaborationId"] == COLLAB
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        shared.cleanrooms.get_schema_analysis_rule(
            collaborationIdentifier=COLLAB, name="impressions", type="LIST"
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_batch_operations_answer_found_and_missing_items(shared: Harness) -> None:
    schemas = shared.cleanrooms.batch_get_schema(
        collaborationIdentifier=COLLAB, names=["purchases", "nope"]
    )
    assert [s["name"] for s in schemas["schemas"]] == ["purchases"]
    assert [(e["name"], e["code"]) for e in schemas["errors"]] == [
        ("nope", "ResourceNotFoundException")
    ]
    rules = shared.cleanrooms.batch_get_schema_analysis_rule(
        collaborationIdentifier=COLLAB,
        schemaAnalysisRuleRequests=[
            {"name": "purchases", "type": "CUSTOM"},
            {"name": "purchases", "type": "AGGREGATION"},
        ],
    )
    custom = rules["analysisRules"][0]["policy"]["v1"]["custom"]
    assert custom["disallowedOutputColumns"] == ["hashed_email"]
    assert [(e["name"], e["type"]) for e in rules["errors"]] == [("purchases", "AGGREGATION")]


def test_a_table_without_a_rule_shows_not_ready_as_in_clean_rooms(shared: Harness) -> None:
    open_collab = "5a3e8c1d-7b2f-4d69-8e0a-1f4c6b9d2e75"
    schema = shared.cleanrooms.get_schema(collaborationIdentifier=open_collab, name="purchases")[
        "schema"
    ]
    assert schema["analysisRuleTypes"] == []
    status = schema["schemaStatusDetails"][0]
    assert status["status"] == "NOT_READY"
    assert status["reasons"][0]["code"] == "ANALYSIS_RULE_MISSING"


def test_an_unknown_collaboration_or_table_is_not_found(shared: Harness) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        shared.cleanrooms.get_schema(collaborationIdentifier=COLLAB, name="nope")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        shared.cleanrooms.list_schemas(
            collaborationIdentifier="0" * 8 + "-0000-0000-0000-" + "0" * 12
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize("mode", ["http"])  # the AWS CLI is another process: the server
def test_the_aws_cli_reads_a_schema_analysis_rule(make_harness: MakeHarness) -> None:
    make_harness()
    done = subprocess.run(
        [
            str(AWS_CLI),
            "cleanrooms",
            "get-schema-analysis-rule",
            "--collaboration-identifier",
            COLLAB,
            "--name",
            "impressions",
            "--type",
            "AGGREGATION",
            "--output",
            "json",
            "--endpoint-url",
            os.environ["AWS_ENDPOINT_URL_CLEANROOMS"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AWS_PAGER": ""},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rule = json.loads(done.stdout)["analysisRule"]
    constraint = rule["policy"]["v1"]["aggregation"]["outputConstraints"][0]
    assert constraint == {"columnName": "hashed_email", "minimum": 150, "type": "COUNT_DISTINCT"}


@pytest.mark.parametrize("mode", ["inprocess"])
def test_awswrangler_reads_a_protected_aggregation_unmodified(make_harness: MakeHarness) -> None:
    # awswrangler is not a dependency (it pins pyarrow below crq's); the test runs where it is
    # installed (checked with awswrangler 3.17.1).
    wr = pytest.importorskip("awswrangler")
    harness = make_harness()
    frame = wr.cleanrooms.read_sql_query(
        sql=REACH,
        membership_id=PROTECTED,
        output_bucket=harness.bucket,
        output_prefix="wrangler",
        boto3_session=harness.session,
    )
    expected = {k: n for k, n in reach_computed_independently().items() if n >= 150}
    got = {(r.campaign_id, r.channel): int(r.people) for r in frame.itertuples()}
    assert got == expected
