"""The collaboration's SQL dialect: parse a query as Clean Rooms would read it, emit DuckDB SQL.

`analyticsEngine: SPARK` reads Spark SQL; `CLEAN_ROOMS_SQL` reads Amazon Redshift's dialect,
the one the Clean Rooms SQL reference is derived from (its functions are Redshift's: GETDATE,
DATEADD, CONVERT, NVL, TO_CHAR, ...; docs/engine.md cites the sources). sqlglot parses and
transpiles both; the analysis rules are checked on the parsed tree (analysis_rules.py), and
template parameters become typed DuckDB parameters in the tree, never text pasted into SQL.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError

from .execution import MALFORMED_QUERY, QueryFailed

# The sqlglot dialect each analytics engine's SQL is read in.
DIALECTS = {"SPARK": "spark", "CLEAN_ROOMS_SQL": "redshift"}
DIALECT_NAMES = {"SPARK": "Spark SQL", "CLEAN_ROOMS_SQL": "Clean Rooms SQL"}


def parse(sql: str, analytics_engine: str) -> exp.Query:
    """The single SELECT of `sql`, parsed in the engine's dialect; MALFORMED_QUERY otherwise."""
    dialect, name = DIALECTS[analytics_engine], DIALECT_NAMES[analytics_engine]
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        detail = exc.errors[0]["description"] if exc.errors else str(exc)
        raise QueryFailed(MALFORMED_QUERY, f"{name} syntax error: {detail}") from exc
    except SqlglotError as exc:
        raise QueryFailed(MALFORMED_QUERY, f"{name} cannot read the query: {exc}") from exc
    if len(statements) != 1:
        raise QueryFailed(MALFORMED_QUERY, f"expected one SQL statement, found {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise QueryFailed(MALFORMED_QUERY, "only SELECT statements can run in a protected query")
    _refuse_untranslatable(tree, name)
    if analytics_engine == "SPARK":
        tree = _query(tree.transform(_strict_cast))
    return tree


def _query(tree: exp.Expr) -> exp.Query:
    # A transform keeps the root's class unless it replaces the root, which ours never do.
    assert isinstance(tree, exp.Query)
    return tree


# Clauses DuckDB has no equivalent for, which sqlglot would drop without a word.
_UNTRANSLATABLE = {
    "distribute": "DISTRIBUTE BY",
    "cluster": "CLUSTER BY",
    "sort": "SORT BY",
}


def _refuse_untranslatable(tree: exp.Expr, name: str) -> None:
    for node in tree.walk():
        for key, clause in _UNTRANSLATABLE.items():
            if node.args.get(key):
                raise QueryFailed(
                    MALFORMED_QUERY,
                    f"{name} {clause} cannot be translated to the local engine (DuckDB); "
                    "use ORDER BY for an ordered result",
                )


def _strict_cast(node: exp.Expr) -> exp.Expr:
    # sqlglot reads Spark's CAST as TRY_CAST (Spark's legacy non-ANSI mode returns NULL on a bad
    # value). Spark 4 runs in ANSI mode, where a bad cast fails; the engine keeps failures loud.
    # An explicit TRY_CAST (safe=True) stays a TRY_CAST.
    if isinstance(node, exp.TryCast) and not node.args.get("safe"):
        return exp.Cast(**node.args)
    return node


def _spark_dates(node: exp.Expr) -> exp.Expr:
    # Spark's date_add/date_sub return a DATE; DuckDB's date + INTERVAL is a TIMESTAMP.
    if isinstance(node, exp.TsOrDsAdd) and not isinstance(node.parent, exp.Cast):
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DATE"))
    return node


def bind_parameters(tree: exp.Query, types: Mapping[str, str]) -> exp.Query:
    """Each `:name` of an analysis template becomes `CAST($name AS <DuckDB type>)`."""
    missing = sorted({p.name for p in tree.find_all(exp.Placeholder) if p.name not in types})
    if missing:
        names = ", ".join(f":{n}" for n in missing)
        raise QueryFailed(
            MALFORMED_QUERY,
            f"{names}: parameters are only allowed in analysis templates that declare them",
        )

    def cast(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Placeholder) and node.name:
            target = exp.DataType.build(types[node.name], dialect="duckdb")
            return exp.Cast(this=exp.Placeholder(this=node.name), to=target)
        return node

    return _query(tree.transform(cast))


def to_duckdb(tree: exp.Expr, analytics_engine: str) -> str:
    """DuckDB SQL for the tree; a construct DuckDB has no translation for is MALFORMED_QUERY.
    (Run after the rule checks: the casts added here are the engine's, not the query's.)"""
    if analytics_engine == "SPARK":
        tree = tree.transform(_spark_dates)
    for node in tree.find_all(exp.Select):
        # Spark's optimizer hints (/*+ BROADCAST(t) */) do not change a result; DuckDB has none.
        node.set("hint", None)
    try:
        return tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise QueryFailed(
            MALFORMED_QUERY, f"this construct cannot be translated to the local engine: {exc}"
        ) from exc


def referenced_tables(tree: exp.Expr, known: Mapping[str, str]) -> list[str]:
    """The collaboration tables (`known`: lower-case name -> name) the query reads, in order;
    names of its own CTEs are not tables."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: dict[str, None] = {}
    for table in tree.find_all(exp.Table):
        key = table.name.lower()
        if key in known and key not in ctes and not table.args.get("db"):
            found.setdefault(known[key])
    return list(found)
