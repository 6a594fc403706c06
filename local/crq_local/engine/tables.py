"""Reading the collaboration's tables: local CSV or Parquet files, or S3 objects via boto3."""

from __future__ import annotations

import tempfile
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

Format = Literal["csv", "parquet"]


class TableReadError(Exception):
    """A table file cannot be read (missing, unreadable, not the declared format)."""


@dataclass(frozen=True, slots=True)
class TableSource:
    """One table as a query sees it: a local file (or its rows, already read), and the
    columns it may read (None: all)."""

    name: str
    file: Path
    format: Format
    columns: tuple[str, ...] | None
    rows: pa.Table | None = None


def reader_sql(fmt: Format) -> str:
    # The path is bound as a parameter: it comes from the trusted collaboration file, but
    # quoting by hand is a habit not worth having.
    if fmt == "parquet":
        return "read_parquet($path)"
    return "read_csv($path, header = true, auto_detect = true)"


def describe_columns(file: Path, fmt: Format) -> list[str]:
    """Column names of a table file, as DuckDB reads them."""
    with duckdb.connect(":memory:") as con:
        try:
            rows = con.execute(f"DESCRIBE SELECT * FROM {reader_sql(fmt)}", {"path": str(file)})
            return [str(row[0]) for row in rows.fetchall()]
        except duckdb.Error as exc:
            raise TableReadError(f"cannot read {file} as {fmt}: {first_line(exc)}") from exc


class TableCache:
    """Local table files read once into Arrow (re-read when a file changes), so each query
    copies them from memory instead of parsing the files again. Big files are not kept."""

    MAX_BYTES = 64 * 1024 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, str, int, int], pa.Table] = {}

    def get(self, file: Path, fmt: Format) -> pa.Table | None:
        try:
            stat = file.stat()
        except OSError:
            return None  # the query's own read reports the problem
        if stat.st_size > self.MAX_BYTES:
            return None
        key = (str(file), fmt, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            table = self._tables.get(key)
        if table is None:
            with duckdb.connect(":memory:") as con:
                try:
                    result = con.execute(f"SELECT * FROM {reader_sql(fmt)}", {"path": str(file)})
                    table = to_arrow(result)
                except duckdb.Error:
                    return None
            with self._lock:
                self._tables = {k: v for k, v in self._tables.items() if k[0] != str(file)}
                self._tables[key] = table
        return table


def download(s3: Any, uri: str, stack: ExitStack) -> Path:
    """Copy s3://bucket/key to a temporary file that lives as long as `stack`."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crq-table-")))
    target = folder / (Path(key).name or "table")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        with target.open("wb") as f:
            for chunk in body.iter_chunks(1 << 20):
                f.write(chunk)
    except Exception as exc:  # botocore raises several unrelated classes for a missing object
        raise TableReadError(f"cannot read {uri}: {exc}") from exc
    return target


def to_arrow(result: Any) -> pa.Table:
    # duckdb renamed fetch_arrow_table() to to_arrow_table() in 1.4; both are in our range.
    fetch = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
    table: pa.Table = fetch()
    return table


def first_line(exc: BaseException) -> str:
    """An error's first line: DuckDB appends the SQL text around the error position."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
