"""From a protected query's request to the DuckDB SQL it runs: parse, check, bind, transpile.

The step before execution: the query's SQL (the direct queryString, or the analysis template's
text with its `:name` placeholders) is parsed in the collaboration's dialect, checked against
the analysis rules of the tables it reads, its parameters become typed DuckDB parameters, and
DuckDB SQL comes out. Every refusal is a QueryFailed (MALFORMED_QUERY) the query ends with.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlglot import exp

from . import dialect
from .analysis_rules import TableRule, rule_of
from .params import PARAMETER_TYPES
from .rule_checks import QueryContext, enforce
from .tables import TableReadError, describe_columns

if TYPE_CHECKING:
    from .config import EngineConfig, Table
    from .world import Membership, Template


@dataclass(frozen=True)
class Plan:
    sql: str  # DuckDB SQL
    tables: tuple[str, ...]  # the collaboration tables it reads
    parameters: frozenset[str]  # the template parameters it uses


class Planner:
    """Plans queries for one engine; remembers each local table's columns (by file version)."""

    def __init__(self, config: EngineConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._columns: dict[tuple[str, int, int], frozenset[str]] = {}

    def plan(
        self,
        membership: Membership,
        sql: str,
        template: Template | None,
        receivers: list[str],
    ) -> Plan:
        collab = membership.collaboration
        tree = dialect.parse(sql, collab.analytics_engine)
        known = {t.name.lower(): t.name for t in collab.tables}
        tables = dialect.referenced_tables(tree, known)
        by_name = {t.name: t for t in collab.tables}
        rules: dict[str, TableRule | None] = {t: rule_of(by_name[t]) for t in tables}
        if any(rules.values()):
            ctx = QueryContext(
                caller=membership.account_id,
                owners={t: by_name[t].creatorAccountId or self._config.accountId for t in tables},
                columns={t: self.columns(by_name[t]) for t in tables},
                template_arn=template.arn if template else None,
                template_creator=template.creator.account_id if template else None,
                receivers=tuple(receivers),
            )
            tree = enforce(tree, tables, rules, ctx)
        types = {p.name: PARAMETER_TYPES[p.type] for p in template.parameters} if template else {}
        used = frozenset(p.name for p in tree.find_all(exp.Placeholder))
        tree = dialect.bind_parameters(tree, types)
        return Plan(dialect.to_duckdb(tree, collab.analytics_engine), tuple(tables), used)

    def columns(self, table: Table) -> frozenset[str]:
        """The table's columns (lower case) as a query sees them; empty when not known."""
        if table.columns:
            return frozenset(c.lower() for c in table.columns)
        if table.is_s3:
            return frozenset()
        file: Path = self._config.resolve(table.path)
        try:
            stat = file.stat()
        except OSError:
            return frozenset()
        key = (str(file), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            found = self._columns.get(key)
        if found is None:
            try:
                found = frozenset(c.lower() for c in describe_columns(file, table.file_format))
            except TableReadError:
                return frozenset()
            with self._lock:
                self._columns[key] = found
        return found
