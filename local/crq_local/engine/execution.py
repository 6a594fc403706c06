"""Running one protected query's SQL in DuckDB, seeing only the collaboration's tables.

Each query gets a fresh in-memory database holding a copy of each configured table, limited
to its allowed columns. Then file, network and extension access are switched off and the
configuration is locked, so the SQL cannot read anything else (`read_csv('/etc/passwd')`
fails) nor turn access back on. Only a single SELECT statement is accepted.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

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
    columns = ", ".join(_quote(c) for c in table.columns) if table.columns else "*"
    create = f"CREATE TABLE {_quote(table.name)} AS SELECT {columns} FROM"
    try:
        if table.rows is not None:
            con.register("crq_source_rows", table.rows)
            con.execute(f"{create} crq_source_rows")
            con.unregister("crq_source_rows")
        else:
            con.execute(f"{create} {reader_sql(table.format)}", {"path": str(table.file)})
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise QueryFailed(
            TABLE_READ_FAILED, f"table {table.name} cannot be read: {first_line(exc)}"
        ) from exc


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


__all__ = ["Execution", "QueryFailed", "TableReadError", "TableSource"]
