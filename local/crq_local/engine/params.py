"""Analysis template parameters: `:name` placeholders, their types, and binding them as values.

A value is never pasted into the SQL text. Each `:name` becomes `CAST($name AS <type>)`, a
DuckDB prepared-statement parameter, and the value travels separately to `execute`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import duckdb

# The model's ParameterType enum, each mapped to the DuckDB type its values are cast to.
PARAMETER_TYPES: dict[str, str] = {
    "SMALLINT": "SMALLINT",
    "SHORT": "SMALLINT",
    "TINYINT": "TINYINT",
    "INTEGER": "INTEGER",
    "INT": "INTEGER",
    "BIGINT": "BIGINT",
    "LONG": "BIGINT",
    "DECIMAL": "DECIMAL(38, 9)",
    "NUMERIC": "DECIMAL(38, 9)",
    "REAL": "FLOAT",
    "FLOAT": "FLOAT",
    "DOUBLE": "DOUBLE",
    "DOUBLE_PRECISION": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "CHAR": "VARCHAR",
    "CHARACTER": "VARCHAR",
    "VARCHAR": "VARCHAR",
    "STRING": "VARCHAR",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP_NTZ": "TIMESTAMP",
    "TIMESTAMPTZ": "TIMESTAMPTZ",
    "TIMESTAMP_LTZ": "TIMESTAMPTZ",
    "TIME": "TIME",
    "TIMETZ": "TIMETZ",
    "VARBYTE": "BLOB",
    "BINARY": "BLOB",
    "BYTE": "BLOB",
}


@dataclass(frozen=True, slots=True)
class Declared:
    name: str
    type: str
    default: str | None = None


@dataclass(frozen=True, slots=True)
class Bound:
    """SQL with DuckDB placeholders, and the values to bind (strings, cast in the SQL)."""

    sql: str
    values: dict[str, str]


class ParameterError(Exception):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems  # (parameter name, message); never the value
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))


def _scan(sql: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, name) of each `:name` outside strings, quoted names, comments and `::`."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:  # doubled quote escapes
                end = sql.find(ch, end + 2)
            i = n if end == -1 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif sql.startswith("::", i):
            i += 2
        elif ch == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            yield i, j, sql[i + 1 : j]
            i = j
        else:
            i += 1


def placeholders(sql: str) -> list[str]:
    """The distinct `:name` placeholders of an SQL text, in order of first use."""
    seen: dict[str, None] = {}
    for _, _, name in _scan(sql):
        seen.setdefault(name)
    return list(seen)


def bind(sql: str, declared: Sequence[Declared], given: Mapping[str, str]) -> Bound:
    """Resolve values (given, else default), check them against their types, rewrite the SQL.

    Raises ParameterError listing every unknown, missing or ill-typed parameter.
    """
    by_name = {d.name: d for d in declared}
    problems = [
        (name, "is not a parameter of the analysis template")
        for name in given
        if name not in by_name
    ]
    values: dict[str, str] = {}
    for d in declared:
        value = given.get(d.name, d.default)
        if value is None:
            problems.append((d.name, "is required (the template gives it no default)"))
        elif not _castable(value, d.type):
            problems.append((d.name, f"is not a valid {d.type} value"))
        else:
            values[d.name] = value
    if problems:
        raise ParameterError(problems)
    out, last = [], 0
    for start, end, name in _scan(sql):
        if name in by_name:
            out += [sql[last:start], f"CAST(${name} AS {PARAMETER_TYPES[by_name[name].type]})"]
            last = end
    out.append(sql[last:])
    used = set(placeholders(sql))
    return Bound("".join(out), {k: v for k, v in values.items() if k in used})


def _castable(value: str, type_name: str) -> bool:
    with duckdb.connect(":memory:") as con:
        try:
            con.execute(f"SELECT CAST($v AS {PARAMETER_TYPES[type_name]})", {"v": value})
        except duckdb.Error:
            return False
    return True
