"""Queries that run: every output type, template parameters, events and statistics."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crq_local.engine.testing import (
    CALLER,
    CONVERSION_ARN,
    EXAMPLE,
    MEMBERSHIP,
    OVERLAP_ARN,
    RETAILER,
    Harness,
    MakeHarness,
    example_world,
)

DATA = EXAMPLE.parent / "data"


def impressions() -> list[dict[str, str]]:
    with (DATA / "impressions.csv").open() as f:
        return list(csv.DictReader(f))


def customers() -> set[str]:
    return set(pq.read_table(DATA / "purchases.parquet").column("hashed_email").to_pylist())


def expected_overlap(start: date, end: date) -> dict[str, tuple[int, int]]:
    """The audience_overlap template computed independently of DuckDB."""
    reached: dict[str, set[str]] = defaultdict(set)
    for row in impressions():
        if start <= date.fromisoformat(row["impression_date"]) <= end:
            reached[row["campaign_id"]].add(row["hashed_email"])
    buyers = customers()
    return {c: (len(people), len(people & buyers)) for c, people in reached.items()}


def test_a_template_query_writes_its_csv_result_to_s3(harness: Harness) -> None:
    # Given the audience overlap template, for February only
    query_id = harness.start(
        template=OVERLAP_ARN, parameters={"start_date": "2026-02-01", "end_date": "2026-02-28"}
    )
    # When it ends
    query = harness.finish(query_id)
    # Then it succeeded and its result is one CSV file under the location it reports
    assert query["status"] == "SUCCESS"
    location = query["result"]["output"]["s3"]["location"]
    assert location == f"s3://{harness.bucket}/{query_id}/"
    (key,) = harness.keys(f"{query_id}/")
    assert key == f"{query_id}/result/result.csv"
    rows = harness.csv_rows(key)
    got = {
        r["campaign_id"]: (int(r["reached_people"]), int(r["overlapping_customers"])) for r in rows
    }
    assert got == expected_overlap(date(2026, 2, 1), date(2026, 2, 28))


def test_template_defaults_apply_and_the_bound_dates_change_the_answer(harness: Harness) -> None:
    # start_date defaults to 2026-01-01; only end_date is given
    whole = harness.start(template=OVERLAP_ARN, parameters={"end_date": "2026-03-31"})
    january = harness.start(template=OVERLAP_ARN, parameters={"end_date": "2026-01-31"})
    assert harness.finish(whole)["status"] == "SUCCESS"
    assert harness.finish(january)["status"] == "SUCCESS"
    whole_rows = harness.csv_rows(f"{whole}/result/result.csv")
    january_rows = harness.csv_rows(f"{january}/result/result.csv")
    reached = {r["campaign_id"]: int(r["reached_people"]) for r in whole_rows}
    assert reached == {
        c: v[0] for c, v in expected_overlap(date(2026, 1, 1), date(2026, 3, 31)).items()
    }
    assert sum(int(r["reached_people"]) for r in january_rows) < sum(reached.values())


def test_the_conversion_template_runs_with_its_default_window(harness: Harness) -> None:
    query = harness.finish(harness.start(template=CONVERSION_ARN))
    assert query["status"] == "SUCCESS", query.get("error")
    rows = harness.csv_rows(f"{query['id']}/result/result.csv")
    assert {r["campaign_id"] for r in rows} == {r["campaign_id"] for r in impressions()}
    for row in rows:
        assert 0 < float(row["conversion_rate"]) < 1
        assert int(row["converted_people"]) <= int(row["reached_people"])


def test_direct_sql_parquet_single_file(harness: Harness) -> None:
    query_id = harness.start(
        "SELECT channel, COUNT(*) AS n FROM impressions GROUP BY channel ORDER BY channel",
        output=harness.s3_output(
            resultFormat="PARQUET", keyPrefix="runs/daily", singleFileOutput=True
        ),
    )
    query = harness.finish(query_id)
    assert query["result"]["output"]["s3"]["location"] == (
        f"s3://{harness.bucket}/runs/daily/{query_id}/"
    )
    assert harness.keys() == [f"runs/daily/{query_id}/result/result.parquet"]
    rows = harness.parquet_rows(f"runs/daily/{query_id}/result/result.parquet")
    assert {r["channel"]: r["n"] for r in rows} == Counter(r["channel"] for r in impressions())


@pytest.mark.parametrize("result_format", ["CSV", "PARQUET"])
def test_several_files_when_single_file_output_is_false(
    harness: Harness, result_format: str
) -> None:
    query_id = harness.start(
        "SELECT campaign_id, channel, COUNT(*) AS n FROM impressions GROUP BY ALL",
        output=harness.s3_output(resultFormat=result_format, singleFileOutput=False),
    )
    assert harness.finish(query_id)["status"] == "SUCCESS"
    keys = harness.keys(f"{query_id}/result/")
    assert len(keys) > 1
    ext = "csv" if result_format == "CSV" else "parquet"
    assert all(k.endswith(f".{ext}") and "/result/part-" in k for k in keys)
    read = harness.csv_rows if result_format == "CSV" else harness.parquet_rows
    rows = [row for key in keys for row in read(key)]
    assert len(rows) == 16  # 4 campaigns x 4 channels, each part with its own header
    assert sum(int(r["n"]) for r in rows) == len(impressions())


def test_member_output_keeps_the_rows_for_the_receiver(harness: Harness) -> None:
    query_id = harness.start(
        "SELECT category, COUNT(*) AS purchases FROM purchases GROUP BY category",
        output={"outputConfiguration": {"member": {"accountId": RETAILER}}},
    )
    query = harness.finish(query_id)
    assert query["result"]["output"] == {"memberList": [{"accountId": RETAILER}]}
    assert harness.keys() == []
    with (harness.members_dir / RETAILER / query_id / "result.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert (
        sum(int(r["purchases"]) for r in rows)
        == pq.read_metadata(DATA / "purchases.parquet").num_rows
    )


def test_distribute_writes_to_s3_and_to_the_member(harness: Harness) -> None:
    query_id = harness.start(
        "SELECT COUNT(DISTINCT hashed_email) AS people FROM impressions",
        output={
            "outputConfiguration": {
                "distribute": {
                    "locations": [
                        {"s3": {"bucket": harness.bucket, "resultFormat": "CSV", "keyPrefix": "d"}},
                        {"member": {"accountId": RETAILER}},
                    ]
                }
            }
        },
    )
    query = harness.finish(query_id)
    assert query["result"]["output"] == {
        "distribute": {
            "s3": {"location": f"s3://{harness.bucket}/d/{query_id}/"},
            "memberList": [{"accountId": RETAILER}],
        }
    }
    people = len({r["hashed_email"] for r in impressions()})
    assert harness.csv_rows(f"d/{query_id}/result/result.csv") == [{"people": str(people)}]
    assert (harness.members_dir / RETAILER / query_id / "result.csv").read_text().splitlines() == [
        '"people"',
        str(people),
    ]


def test_each_status_change_is_an_event_on_the_default_bus(harness: Harness) -> None:
    query_id = harness.start("SELECT 1 AS one")
    harness.finish(query_id)
    events = [e for e in harness.events(3) if e["detail"]["protectedQueryId"] == query_id]
    assert [e["detail-type"] for e in events] == [
        "Protected Query Submitted",
        "Protected Query Started",
        "Protected Query Succeeded",
    ]
    for event, status in zip(events, ["SUBMITTED", "STARTED", "SUCCESS"], strict=True):
        assert event["source"] == "aws.cleanrooms"
        assert event["detail"] == {
            "membershipId": MEMBERSHIP,
            "protectedQueryId": query_id,
            "status": status,
        }
        assert event["resources"] == [
            f"arn:aws:cleanrooms:us-east-1:{CALLER}:membership/{MEMBERSHIP}"
        ]


def test_statistics_follow_the_worker_configuration(harness: Harness) -> None:
    small = harness.start("SELECT 1 AS one")
    large = harness.start(
        "SELECT 1 AS one", computeConfiguration={"worker": {"type": "CR.4X", "number": 32}}
    )
    for query_id, crpus in ((small, 16 * 1.0), (large, 32 * 4.0)):
        query = harness.finish(query_id)
        stats = query["statistics"]
        units = stats["billedResourceUtilization"]["units"]
        # units = CRPUs x hours running, and a query runs no longer than it exists
        assert 0 < units <= crpus * stats["totalDurationInMillis"] / 3_600_000 + 1e-6
    assert harness.get(large)["computeConfiguration"] == {"worker": {"type": "CR.4X", "number": 32}}


def test_a_table_can_live_in_s3(make_harness: MakeHarness, tmp_path: Path) -> None:
    world = example_world()
    world["collaborations"][0]["tables"][0]["path"] = "s3://shared-data/ads/impressions.csv"
    harness = make_harness(world)
    harness.s3.create_bucket(Bucket="shared-data")
    harness.s3.upload_file(str(DATA / "impressions.csv"), "shared-data", "ads/impressions.csv")
    query = harness.finish(harness.start("SELECT COUNT(*) AS n FROM impressions"))
    assert query["status"] == "SUCCESS", query.get("error")
    assert harness.csv_rows(f"{query['id']}/result/result.csv") == [{"n": str(len(impressions()))}]


def test_the_engine_records_each_accepted_start(harness: Harness) -> None:
    first = harness.start("SELECT 1 AS one")
    second = harness.start(template=OVERLAP_ARN, parameters={"end_date": "2026-01-02"})
    assert [r.query_id for r in harness.engine.received] == [first, second]
    assert harness.engine.received[1].request["sqlParameters"]["analysisTemplateArn"] == (
        OVERLAP_ARN
    )
    harness.finish(second)
