"""What a query's SQL can see: the collaboration's tables and allowed columns, nothing else."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from crq_local.engine.execution import Execution, QueryFailed
from crq_local.engine.tables import TableSource

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"
TABLES = [
    TableSource("impressions", DATA / "impressions.csv", "csv", ("hashed_email", "channel")),
    TableSource("purchases", DATA / "purchases.parquet", "parquet", None),
]
SECRET_ROWS = pa.table({"secret": ["s3cr3t"]})


def run(sql: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = Execution().run(TABLES, sql, {}).to_pylist()
    return rows


def failure(sql: str) -> QueryFailed:
    with pytest.raises(QueryFailed) as caught:
        run(sql)
    return caught.value


def test_allowed_columns_only() -> None:
    assert run("SELECT * FROM impressions LIMIT 1")[0].keys() == {"hashed_email", "channel"}
    assert "store_id" in run("SELECT * FROM purchases LIMIT 1")[0]  # no list: every column
    assert failure("SELECT device_type FROM impressions").code == "MALFORMED_QUERY"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_parquet('{DATA / 'purchases.parquet'}')",
        f"SELECT * FROM '{DATA / 'impressions.csv'}'",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM SECRET_ROWS",  # a Python object: no replacement scans
    ],
)
def test_no_file_or_python_object_is_reachable(sql: str) -> None:
    assert failure(sql).code in ("MALFORMED_QUERY", "QUERY_EXECUTION_FAILED")


@pytest.mark.parametrize(
    "sql",
    [
        "SET enable_external_access = true",
        "ATTACH '/tmp/x.duckdb'",
        "INSTALL httpfs",
        "COPY impressions TO '/tmp/out.csv'",
        "SELECT 1; SELECT 2",
        "DROP TABLE impressions",
    ],
)
def test_only_one_select_statement(sql: str) -> None:
    assert failure(sql).code == "MALFORMED_QUERY"


def test_a_cancelled_run_does_not_start() -> None:
    execution = Execution()
    execution.interrupt()
    with pytest.raises(QueryFailed) as caught:
        execution.run(TABLES, "SELECT 1", {})
    assert caught.value.code == "CANCELLED"
