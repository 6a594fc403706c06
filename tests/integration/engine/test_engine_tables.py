"""How the engine reads the collaboration's tables for a query.

- Only the tables the SQL reads are fetched and registered: a query on a small table does not
  pay for (or fail on) a big or broken one elsewhere in the collaboration.
- Parquet tables are views over the file, limited to the allowed columns: a private column of a
  Parquet table is not there for the SQL, as for a CSV table.
- The engine's AWS clients are made when it opens a front door, not by the first queries of a
  burst under a lock.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from crq_local.engine import aws
from crq_local.engine.testing import Harness, MakeHarness, example_world


def test_a_query_reads_only_the_tables_it_names(make_harness: MakeHarness) -> None:
    # Given a collaboration whose impressions table cannot be read at all (its S3 object does
    # not exist; tables in S3 are fetched for each query that uses them)
    world = example_world()
    collaboration = next(
        c for c in world["collaborations"] if any(t["name"] == "impressions" for t in c["tables"])
    )
    impressions = next(t for t in collaboration["tables"] if t["name"] == "impressions")
    impressions["path"] = "s3://crq-no-such-bucket/impressions.csv"
    h = make_harness(world)

    # When a query reads purchases only, and another reads impressions
    purchases_only = h.finish(h.start("SELECT COUNT(*) AS n FROM purchases"))
    broken = h.finish(h.start("SELECT COUNT(*) AS n FROM impressions"))

    # Then the first one succeeds (the broken table was never opened), the second one fails
    assert purchases_only["status"] == "SUCCESS", purchases_only.get("error")
    assert broken["status"] == "FAILED"
    assert broken["error"]["code"] == "TABLE_READ_FAILED"


@pytest.mark.parametrize(
    ("sql", "status"),
    [
        ("SELECT category, SUM(amount) AS total FROM purchases GROUP BY category", "SUCCESS"),
        # store_id is in the Parquet file but not in the table's allowed columns
        ("SELECT store_id FROM purchases", "FAILED"),
        ("SELECT * FROM purchases WHERE store_id IS NOT NULL", "FAILED"),
    ],
)
def test_a_parquet_table_shows_only_its_allowed_columns(
    harness: Harness, sql: str, status: str
) -> None:
    query = harness.finish(harness.start(sql))
    assert query["status"] == status, query.get("error")
    if status == "FAILED":
        assert query["error"]["code"] == "MALFORMED_QUERY"


def test_select_star_on_a_parquet_table_returns_the_allowed_columns(harness: Harness) -> None:
    query = harness.finish(harness.start("SELECT * FROM purchases LIMIT 3"))
    assert query["status"] == "SUCCESS", query.get("error")
    [key] = [k for k in harness.keys(f"{query['id']}/") if k.endswith(".csv")]
    assert list(harness.csv_rows(key)[0]) == ["hashed_email", "purchase_date", "amount", "category"]


def test_the_engine_makes_its_aws_clients_before_any_query(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a count of the sessions the engine's clients are made from
    made: list[Any] = []
    original = aws.new_session

    def counting() -> Any:
        made.append(1)
        return original()

    monkeypatch.setattr(aws, "new_session", counting)

    # When the engine opens its front door
    h = make_harness()
    # Then its S3 and EventBridge clients exist already
    assert h.engine.clients.made() >= {"s3", "events"}
    assert len(made) == 1

    # And a burst of queries makes none
    with ThreadPoolExecutor(5) as pool:
        ids = list(pool.map(lambda _: h.start("SELECT COUNT(*) AS n FROM purchases"), range(5)))
    assert [h.finish(i)["status"] for i in ids] == ["SUCCESS"] * 5
    assert len(made) == 1
