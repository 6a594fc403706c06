"""Running one protected query's SQL in DuckDB, seeing only the collaboration's tables.

Each query gets a fresh in-memory database in which each table the query uses is a view, limited
to its allowed columns: over the table's rows already in memory (Arrow, zero copy: a local file
is read once and kept while it is under TableCache.MAX_BYTES), or over a bigger (or S3) Parquet
file as an Arrow dataset (read at query time, only the columns and row groups needed). Only a
CSV too big to keep in memory, or read from S3, is still copied in. Then file, network and
extension access are switched off and the configuration is locked, so the SQL cannot read
anything else (`read_csv('/etc/passwd')` fails; the views read through Arrow, not DuckDB's file
access, so no path is allowed either) nor turn access back on. Only a single SELECT statement is
accepted.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from .tables import TableReadError, TableSource, first_line, reader_sql, to_arrow

# Error codes of a FAILED query (ProtectedQueryError.code); docs/engine.md lists them.
MALFORMED_QUERY = "MALFORMED_QUERY"
QUERY_EXECUTION_FAILED = "QUERY_EXECUTION_FAILED"
TABLE_READ_FAILED = "TABLE_READ_FAILED"

_LOCKDOWN = (
    "SET enable_external_access = false",
    "SET python_enable_replacements = false",  # no scanning of Python variables by name
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET lock_configuration = true",
)


class QueryFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class Execution:
    """One run of one query; `interrupt()` may be called from another thread (cancel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._interrupted = False

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            if self._con is not None:
                self._con.interrupt()  # the connection closes under this same lock

    def run(self, tables: Sequence[TableSource], sql: str, values: Mapping[str, str]) -> pa.Table:
        with self._lock:
            if self._interrupted:
                raise QueryFailed("CANCELLED", "the query was cancelled")
            con = self._con = duckdb.connect(":memory:", config={"threads": 2})
        try:
            for table in tables:
                _load(con, table)
            for statement in _LOCKDOWN:
                con.execute(statement)
            _check_single_select(con, sql)
            return to_arrow(con.execute(sql, dict(values)))
        except duckdb.InterruptException as exc:
            raise QueryFailed("CANCELLED", "the query was cancelled") from exc
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
            raise QueryFailed(MALFORMED_QUERY, first_line(exc)) from exc
        except duckdb.Error as exc:
            raise QueryFailed(QUERY_EXECUTION_FAILED, first_line(exc)) from exc
        finally:
            with self._lock:
                self._con = None
                con.close()


def _load(con: duckdb.DuckDBPyConnection, table: TableSource) -> None:
    try:
        if table.rows is not None:
            con.register(table.name, _project(table.rows, table))
        elif table.format == "parquet":
            con.register(table.name, _parquet_dataset(table))
        else:
            columns = ", ".join(_quote(c) for c in table.columns) if table.columns else "*"
            create = f"CREATE TABLE {_quote(table.name)} AS SELECT {columns} FROM"
            con.execute(f"{create} {reader_sql(table.format)}", {"path": str(table.file)})
    except duckdb.InterruptException:
        raise
    except (duckdb.Error, OSError, pa.ArrowException) as exc:
        raise QueryFailed(
            TABLE_READ_FAILED, f"table {table.name} cannot be read: {first_line(exc)}"
        ) from exc


def _project(rows: pa.Table, table: TableSource) -> pa.Table:
    """The allowed columns of rows in memory (zero copy)."""
    if table.columns is None:
        return rows
    return rows.select(_allowed(rows.schema, table))


def _parquet_dataset(table: TableSource) -> ds.Dataset:
    """A Parquet file as a dataset whose schema holds only the allowed columns: DuckDB scans it
    lazily, and a column left out does not exist for the query."""
    dataset = ds.dataset(str(table.file), format="parquet")
    if table.columns is None:
        return dataset
    schema = pa.schema([dataset.schema.field(name) for name in _allowed(dataset.schema, table)])
    return ds.dataset(str(table.file), format="parquet", schema=schema)


def _allowed(schema: pa.Schema, table: TableSource) -> list[str]:
    """The file's names of the table's allowed columns (matched as DuckDB matches identifiers:
    ignoring case)."""
    assert table.columns is not None
    by_lower = {name.lower(): name for name in schema.names}
    missing = [c for c in table.columns if c.lower() not in by_lower]
    if missing:
        raise QueryFailed(
            TABLE_READ_FAILED,
            f"table {table.name} cannot be read: column {missing[0]!r} is not in {table.file.name}",
        )
    return [by_lower[c.lower()] for c in table.columns]


def referenced_tables(sql: str) -> frozenset[str] | None:
    """Lower-cased names of the tables a statement reads (DuckDB's own parser), or None when it
    does not parse (then every table is registered and the run reports the parse error)."""
    try:
        with duckdb.connect(":memory:") as con:
            return frozenset(name.lower() for name in con.get_table_names(sql))
    except duckdb.Error:
        return None


def _check_single_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryFailed(MALFORMED_QUERY, first_line(exc)) from exc
    if len(statements) != 1:
        raise QueryFailed(MALFORMED_QUERY, f"expected one SQL statement, found {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise QueryFailed(MALFORMED_QUERY, "only SELECT statements can run in a protected query")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


__all__ = ["Execution", "QueryFailed", "TableReadError", "TableSource", "referenced_tables"]
