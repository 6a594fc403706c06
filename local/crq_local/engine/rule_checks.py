"""Enforcing the tables' analysis rules on a parsed query, as the Clean Rooms user guide states.

Checks run on sqlglot's tree (never on the SQL text). A query the rules refuse ends FAILED
with MALFORMED_QUERY, the code Clean Rooms gives a query that "is not valid, such as ... an
unsupported operation" (docs/engine.md cites the pages); the message names the rule type, the
table and the column. Output constraints are not a refusal: they become a HAVING condition, so
rows whose COUNT DISTINCT of the constrained column is below the minimum are left out silently.
When several tables' controls differ, the most restrictive applies: every table's output
constraints are added, and functions and join operators must be allowed by every table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlglot import exp

from .analysis_rules import TableRule
from .execution import MALFORMED_QUERY, QueryFailed

AGGREGATE_NAMES = "COUNT, COUNT DISTINCT, SUM, SUM DISTINCT, AVG"
# The model's ScalarFunctions enum, keyed by the sqlglot expression each one parses into.
SCALAR_FUNCTIONS: dict[type[exp.Expr], str] = {
    exp.Abs: "ABS",
    exp.Cast: "CAST",
    exp.TryCast: "CAST",
    exp.Ceil: "CEILING",
    exp.Coalesce: "COALESCE",
    exp.CurrentDate: "CURRENT_DATE",
    exp.TsOrDsAdd: "DATEADD",
    exp.DateAdd: "DATEADD",
    exp.Extract: "EXTRACT",
    exp.Floor: "FLOOR",
    exp.CurrentTimestamp: "GETDATE",
    exp.Ln: "LN",
    exp.Log: "LOG",
    exp.Lower: "LOWER",
    exp.Round: "ROUND",
    exp.Sqrt: "SQRT",
    exp.Substring: "SUBSTRING",
    exp.TimeToStr: "TO_CHAR",
    exp.ToChar: "TO_CHAR",
    exp.StrToDate: "TO_DATE",
    exp.TsOrDsToDate: "TO_DATE",
    exp.ToNumber: "TO_NUMBER",
    exp.StrToTime: "TO_TIMESTAMP",
    exp.Trunc: "TRUNC",
    exp.DateTrunc: "TRUNC",
    exp.Upper: "UPPER",
}


# sqlglot models some operators as functions too (AND, OR, ...): they are not scalar functions.
OPERATORS = (exp.AggFunc, exp.Distinct, exp.Binary, exp.Connector, exp.Predicate, exp.Unary)


class RuleViolation(QueryFailed):
    def __init__(self, message: str) -> None:
        super().__init__(MALFORMED_QUERY, message)


@dataclass(frozen=True)
class QueryContext:
    """What the checks need beyond the tree and the rules."""

    caller: str  # the query runner's account
    owners: Mapping[str, str]  # table -> creator account
    columns: Mapping[str, frozenset[str]]  # table -> its columns, lower case (may be empty)
    template_arn: str | None = None
    template_creator: str | None = None
    receivers: tuple[str, ...] = field(default_factory=tuple)


def enforce(
    tree: exp.Query,
    tables: list[str],
    rules: Mapping[str, TableRule | None],
    ctx: QueryContext,
) -> exp.Query:
    """Refuse (RuleViolation) or return the tree to run (output constraints added)."""
    ruled = {t: r for t in tables if (r := rules.get(t)) is not None}
    if not ruled:
        return tree  # no table with a rule: the engine's open default (docs/engine.md)
    unruled = [t for t in tables if t not in ruled]
    if unruled:
        raise RuleViolation(
            f"table {unruled[0]} has no analysis rule and cannot be queried together with "
            f"{', '.join(ruled)} (queries can only reference tables with the same rule type)"
        )
    types = {r.type for r in ruled.values()}
    if len(types) > 1:
        listed = ", ".join(f"{t} ({r.type})" for t, r in ruled.items())
        raise RuleViolation(
            f"the query references tables whose analysis rules differ in type: {listed}; "
            "queries can only reference tables with the same analysis rule type"
        )
    for rule in ruled.values():
        _not_emulated(rule)
        if rule.body.get("additionalAnalyses") == "REQUIRED":
            raise RuleViolation(
                f"{rule.type} rule of table {rule.table}: additionalAnalyses is REQUIRED, so "
                "the table can only be used with an additional analysis (Clean Rooms ML), "
                "which the local engine does not emulate"
            )
    kind = types.pop()
    if ctx.template_arn is not None and kind != "CUSTOM":
        table = next(iter(ruled))
        raise RuleViolation(
            f"{kind} rule of table {table}: analysis templates can only query tables with a "
            "CUSTOM analysis rule"
        )
    if kind == "CUSTOM":
        _custom(tree, ruled, ctx)
        return tree
    select = _single_select(tree, kind, next(iter(ruled)))
    scope = _Scope(select, ruled, ctx)
    if kind == "AGGREGATION":
        return _aggregation(select, scope, ruled, ctx)
    _list(select, scope, ruled, ctx)
    return tree


def _not_emulated(rule: TableRule) -> None:
    for member, what in (
        ("differentialPrivacy", "differential privacy (noise and a privacy budget)"),
        ("aggregationThresholds", "aggregation thresholds"),
        ("comparisonControls", "comparison controls"),
    ):
        if rule.body.get(member):
            raise RuleViolation(
                f"{rule.type} rule of table {rule.table}: {member} is set, and the local engine "
                f"does not emulate {what}; it refuses the query rather than run it without "
                "that protection"
            )


# ---- the scope of a single SELECT: aliases and column resolution -------------------------


class _Scope:
    def __init__(
        self, select: exp.Select, rules: Mapping[str, TableRule], ctx: QueryContext
    ) -> None:
        self.rules = rules
        self.ctx = ctx
        self.aliases: dict[str, str] = {}  # alias or name (lower) -> table
        self.instances: list[tuple[str, str]] = []  # (alias as written, table)
        sources = [select.args.get("from_"), *list(select.args.get("joins") or [])]
        for source in sources:
            if source is None:
                continue
            node = source.this
            if not isinstance(node, exp.Table):
                raise RuleViolation(
                    f"{_kind(rules)} queries read tables directly: "
                    f"{node.sql()[:60]!r} (a subquery or function) is not allowed"
                )
            table = next((t for t in rules if t.lower() == node.name.lower()), node.name)
            self.aliases[node.alias_or_name.lower()] = table
            self.instances.append((node.alias_or_name, table))

    def table_of(self, column: exp.Column) -> str | None:
        if column.table:
            return self.aliases.get(column.table.lower())
        name = column.name.lower()
        owners = [
            t for t in dict.fromkeys(self.aliases.values()) if name in self.ctx.columns.get(t, ())
        ]
        return owners[0] if owners else None


def _kind(rules: Mapping[str, TableRule]) -> str:
    return next(iter(rules.values())).type


def _single_select(tree: exp.Query, kind: str, table: str) -> exp.Select:
    where = f"{kind} rule of table {table}"
    if not isinstance(tree, exp.Select):
        raise RuleViolation(
            f"{where}: only a single SELECT is allowed (no UNION or set operations)"
        )
    if tree.args.get("with_") or tree.args.get("with"):
        raise RuleViolation(f"{where}: common table expressions (WITH) are not allowed")
    for node in tree.walk():
        if node is not tree and isinstance(node, exp.Select | exp.Subquery):
            raise RuleViolation(f"{where}: subqueries are not allowed")
        if isinstance(node, exp.Window):
            raise RuleViolation(f"{where}: window functions are not allowed")
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            raise RuleViolation(f"{where}: SELECT * is not allowed; name the columns")
    return tree


def _context(column: exp.Column) -> str:
    """Where a column is used: "aggregate", "join" (a JOIN's ON), or the clause it is in."""
    node: exp.Expr | None = column
    while node is not None:
        parent = node.parent
        if isinstance(node, exp.AggFunc):
            return "aggregate"
        key = node.arg_key or ""
        if isinstance(parent, exp.Join) and key in ("on", "using"):
            return "join"
        if isinstance(parent, exp.Select):
            return {
                "expressions": "SELECT",
                "where": "WHERE",
                "group": "GROUP BY",
                "having": "HAVING",
                "order": "ORDER BY",
            }.get(key, key.upper())
        node = parent
    return "SELECT"


def _check_joins(select: exp.Select, scope: _Scope, member: str) -> None:
    """INNER joins only, on `=` between the tables' join columns, with allowed AND/OR."""
    for join in select.args.get("joins") or []:
        kind = (join.args.get("kind") or "").upper()
        side = (join.args.get("side") or "").upper()
        table = scope.aliases.get(join.this.alias_or_name.lower(), join.this.name)
        where = (
            f"{scope.rules[table].type} rule of table {table}" if table in scope.rules else table
        )
        if side or kind not in ("", "INNER"):
            written = " ".join(w for w in (side, kind) if w) or "comma"
            raise RuleViolation(f"{where}: only INNER JOIN is allowed, not a {written} join")
        on = join.args.get("on")
        if on is None and not join.args.get("using"):
            raise RuleViolation(f"{where}: a JOIN needs an ON condition on join columns")
        if on is None:
            continue
        operators = _allowed_operators(scope.rules.values())
        for node in on.walk():
            if isinstance(node, exp.And | exp.Or):
                op = "AND" if isinstance(node, exp.And) else "OR"
                if op not in operators:
                    raise RuleViolation(
                        f"{where}: {op} is not an allowed join operator "
                        f"(allowedJoinOperators: {', '.join(sorted(operators)) or 'none'})"
                    )
            elif not isinstance(node, exp.EQ | exp.Column | exp.Paren | exp.Identifier):
                raise RuleViolation(
                    f"{where}: a join condition may only compare join columns with '=', "
                    f"not {node.sql()[:60]!r}"
                )
        for column in on.find_all(exp.Column):
            owner = scope.table_of(column)
            if owner is None or owner not in scope.rules:
                continue
            rule = scope.rules[owner]
            if column.name.lower() not in _lower(rule.columns(member)):
                raise RuleViolation(
                    f"{rule.type} rule of table {owner}: column {column.name} cannot be used in "
                    f"a JOIN: it is not one of the join columns ({', '.join(rule.columns(member))})"
                )


def _allowed_operators(rules: Iterable[TableRule]) -> set[str]:
    allowed = {"AND", "OR"}
    for rule in rules:
        # The model's documentation: AND is the default when the rule names none.
        allowed &= set(rule.body.get("allowedJoinOperators") or ["AND"])
    return allowed


def _join_required(scope: _Scope) -> None:
    """The table must be joined with a table of the query runner (for the runner's own table:
    joined with another table), so the query runs on the intersection of both."""
    caller = scope.ctx.caller
    for table, rule in scope.rules.items():
        required = rule.type == "LIST" or rule.body.get("joinRequired") == "QUERY_RUNNER"
        if not required:
            continue
        others = [t for _, t in scope.instances if t != table]
        own = scope.ctx.owners.get(table) == caller
        if others if own else any(scope.ctx.owners.get(t) == caller for t in others):
            continue
        why = "joinRequired is QUERY_RUNNER" if rule.type == "AGGREGATION" else "list queries"
        raise RuleViolation(
            f"{rule.type} rule of table {table}: the table must be joined with "
            + ("another table" if own else f"a table of the query runner (account {caller})")
            + f" ({why})"
        )


def _lower(names: Iterable[str]) -> set[str]:
    return {n.lower() for n in names}


# ---- aggregation -------------------------------------------------------------------------


def _aggregate_name(agg: exp.AggFunc) -> str | None:
    distinct = isinstance(agg.this, exp.Distinct)
    if isinstance(agg, exp.Count):
        return "COUNT_DISTINCT" if distinct else "COUNT"
    if isinstance(agg, exp.Sum):
        return "SUM_DISTINCT" if distinct else "SUM"
    if isinstance(agg, exp.Avg) and not distinct:
        return "AVG"
    return None


def _aggregation(
    select: exp.Select, scope: _Scope, rules: Mapping[str, TableRule], ctx: QueryContext
) -> exp.Query:
    first = next(iter(rules))
    if not any(e.find(exp.AggFunc) for e in select.expressions):
        raise RuleViolation(
            f"AGGREGATION rule of table {first}: the SELECT list needs at least one aggregate "
            f"function ({AGGREGATE_NAMES})"
        )
    _check_joins(select, scope, "joinColumns")
    _join_required(scope)
    for agg in select.find_all(exp.AggFunc):
        name = _aggregate_name(agg)
        shown = agg.sql(dialect="spark")[:60]
        if name is None:
            raise RuleViolation(
                f"AGGREGATION rule of table {first}: {shown} is not an allowed aggregate "
                f"function (only {AGGREGATE_NAMES})"
            )
        argument = agg.this.expressions[0] if isinstance(agg.this, exp.Distinct) else agg.this
        if not isinstance(argument, exp.Column):
            raise RuleViolation(
                f"AGGREGATION rule of table {first}: {shown}: aggregate functions take a single "
                "column of the rule's aggregateColumns"
            )
        table = scope.table_of(argument)
        if table is None:
            continue  # DuckDB reports an unknown column
        rule = rules[table]
        allowed = {
            c.lower()
            for a in rule.body["aggregateColumns"]
            if a["function"] == name
            for c in a["columnNames"]
        }
        if argument.name.lower() not in allowed:
            raise RuleViolation(
                f"AGGREGATION rule of table {table}: column {argument.name} cannot be used in "
                f"{name}: aggregateColumns allow {name} on "
                f"{', '.join(sorted(allowed)) or 'no column'}"
            )
    for column in select.find_all(exp.Column):
        where = _context(column)
        if where in ("aggregate", "join"):
            continue
        table = scope.table_of(column)
        if table is None:
            continue  # an output alias (ORDER BY n), or unknown: DuckDB decides
        rule = rules[table]
        if column.name.lower() not in _lower(rule.columns("dimensionColumns")):
            what = (
                "it is a join column, which can only be used in a JOIN's ON condition"
                if column.name.lower() in _lower(rule.columns("joinColumns"))
                else f"it is not a dimension column ({', '.join(rule.columns('dimensionColumns'))})"
            )
            raise RuleViolation(
                f"AGGREGATION rule of table {table}: column {column.name} cannot be used in "
                f"{where}: {what}"
            )
    _check_scalar_functions(select, rules)
    return _add_output_constraints(select, scope, rules)


def _check_scalar_functions(select: exp.Select, rules: Mapping[str, TableRule]) -> None:
    allowed: set[str] | None = None
    for rule in rules.values():
        names = set(rule.columns("scalarFunctions"))
        allowed = names if allowed is None else allowed & names
    assert allowed is not None
    for func in select.find_all(exp.Func):
        if isinstance(func, OPERATORS):
            continue
        name = SCALAR_FUNCTIONS.get(type(func))
        shown = func.sql(dialect="spark")[:60]
        if name is None or name not in allowed:
            blocking = [
                t
                for t, r in rules.items()
                if name is None or name not in r.columns("scalarFunctions")
            ]
            label = name or (
                func.sql_name() if not isinstance(func, exp.Anonymous) else func.name.upper()
            )
            raise RuleViolation(
                f"AGGREGATION rule of table {blocking[0]}: scalar function {label} ({shown}) is "
                f"not allowed (scalarFunctions: {', '.join(sorted(allowed)) or 'none'})"
            )


def _add_output_constraints(
    select: exp.Select, scope: _Scope, rules: Mapping[str, TableRule]
) -> exp.Select:
    """HAVING COUNT(DISTINCT alias.column) >= minimum, for every constraint of every table
    instance: rows below any minimum are left out, and the output does not say so."""
    conditions: list[exp.Expr] = []
    for alias, table in scope.instances:
        for constraint in rules[table].body["outputConstraints"]:
            column = exp.column(constraint["columnName"], table=alias)
            count = exp.Count(this=exp.Distinct(expressions=[column]))
            conditions.append(
                exp.GTE(this=count, expression=exp.Literal.number(constraint["minimum"]))
            )
    if not conditions:
        return select
    out = select.copy()
    having = out.args.get("having")
    combined = exp.and_(*([having.this] if having else []), *conditions)
    out.set("having", exp.Having(this=combined))
    return out


# ---- list ----------------------------------------------------------------------------------


def _list(
    select: exp.Select, scope: _Scope, rules: Mapping[str, TableRule], ctx: QueryContext
) -> None:
    first = next(iter(rules))
    if not select.args.get("distinct"):
        raise RuleViolation(f"LIST rule of table {first}: list queries must SELECT DISTINCT")
    for clause in ("group", "having", "order"):
        if select.args.get(clause):
            name = {"group": "GROUP BY", "having": "HAVING", "order": "ORDER BY"}[clause]
            raise RuleViolation(
                f"LIST rule of table {first}: {name} is not allowed in a list query"
            )
    for func in select.find_all(exp.Func):
        if isinstance(func, OPERATORS) and not isinstance(func, exp.AggFunc):
            continue
        kind = "aggregate" if isinstance(func, exp.AggFunc) else "scalar"
        raise RuleViolation(
            f"LIST rule of table {first}: {kind} function {func.sql(dialect='spark')[:60]} is "
            "not allowed: list queries can only use mathematical operators"
        )
    _check_joins(select, scope, "joinColumns")
    _join_required(scope)
    for column in select.find_all(exp.Column):
        where = _context(column)
        if where == "join":
            continue
        table = scope.table_of(column)
        if table is None:
            continue
        rule = rules[table]
        allowed = _lower(rule.columns("listColumns"))
        if where == "WHERE":
            allowed |= _lower(rule.columns("joinColumns"))
        if column.name.lower() not in allowed:
            raise RuleViolation(
                f"LIST rule of table {table}: column {column.name} cannot be used in {where}: "
                f"it is not a list column ({', '.join(rule.columns('listColumns'))})"
            )


# ---- custom --------------------------------------------------------------------------------


def _custom(tree: exp.Query, rules: Mapping[str, TableRule], ctx: QueryContext) -> None:
    for table, rule in rules.items():
        allowed = rule.columns("allowedAnalyses")
        providers = rule.columns("allowedAnalysisProviders")
        if ctx.template_arn is not None:
            ok = ctx.template_arn in allowed or (
                "ANY_QUERY" in allowed and ctx.template_creator in providers
            )
            what = f"analysis template {ctx.template_arn}"
        else:
            ok = "ANY_QUERY" in allowed and ctx.caller in providers
            what = f"direct SQL from account {ctx.caller}"
        if not ok:
            raise RuleViolation(
                f"CUSTOM rule of table {table}: {what} is not allowed (allowedAnalyses: "
                f"{', '.join(allowed) or 'none'}; allowedAnalysisProviders: "
                f"{', '.join(providers) or 'none'})"
            )
        receivers = rule.body.get("allowedResultReceivers")
        if receivers is not None:
            outside = [r for r in ctx.receivers if r not in receivers]
            if outside:
                raise RuleViolation(
                    f"CUSTOM rule of table {table}: account {outside[0]} may not receive results "
                    f"(allowedResultReceivers: {', '.join(receivers) or 'none'})"
                )
    _disallowed_output(tree, rules, ctx)


def _disallowed_output(tree: exp.Query, rules: Mapping[str, TableRule], ctx: QueryContext) -> None:
    banned = {t: _lower(r.columns("disallowedOutputColumns")) for t, r in rules.items()}
    if not any(banned.values()):
        return
    ctes = {cte.alias_or_name.lower(): cte.this for cte in tree.find_all(exp.CTE)}
    for column, table in _output_sources(tree, ctes, rules, ctx, depth=0):
        if column in banned.get(table, set()):
            raise RuleViolation(
                f"CUSTOM rule of table {table}: column {column} is a disallowed output column "
                "and cannot appear in the query's output"
            )


def _output_sources(
    query: exp.Expr,
    ctes: Mapping[str, exp.Expr],
    rules: Mapping[str, TableRule],
    ctx: QueryContext,
    depth: int,
    only: str | None = None,
) -> Iterable[tuple[str, str]]:
    """(column, table) pairs that reach the output of `query` unaggregated (only its output
    column `only`, when given), following CTE and subquery columns by name."""
    if depth > 20:
        return
    if isinstance(query, exp.Union | exp.Intersect | exp.Except):
        yield from _output_sources(query.left, ctes, rules, ctx, depth + 1, only)
        yield from _output_sources(query.right, ctes, rules, ctx, depth + 1, only)
        return
    if isinstance(query, exp.Subquery):
        yield from _output_sources(query.this, ctes, rules, ctx, depth + 1, only)
        return
    if not isinstance(query, exp.Select):
        return
    sources: dict[str, exp.Expr | str] = {}  # alias -> derived query, or table name
    for source in [query.args.get("from_"), *(query.args.get("joins") or [])]:
        if source is None:
            continue
        node = source.this
        alias = node.alias_or_name.lower()
        if isinstance(node, exp.Table) and node.name.lower() in ctes:
            sources[alias] = ctes[node.name.lower()]
        elif isinstance(node, exp.Table):
            table = next((t for t in rules if t.lower() == node.name.lower()), None)
            if table is not None:
                sources[alias] = table
        elif isinstance(node, exp.Subquery):
            sources[alias] = node.this
    for projection in query.expressions:
        star = isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        )
        if star:
            for source in sources.values():
                if isinstance(source, str):
                    for column in ctx.columns.get(source, ()):
                        if only in (None, column):
                            yield column, source
                else:
                    yield from _output_sources(source, ctes, rules, ctx, depth + 1, only)
            continue
        if only is not None and projection.alias_or_name.lower() != only:
            continue
        for column in projection.find_all(exp.Column):
            if any(isinstance(a, exp.AggFunc) for a in _ancestors(column, projection)):
                continue
            if column.table:
                found = sources.get(column.table.lower())
                candidates = [found] if found is not None else []
            else:
                candidates = list(sources.values())
            for source in candidates:
                if isinstance(source, str):
                    if column.table or column.name.lower() in ctx.columns.get(source, ()):
                        yield column.name.lower(), source
                else:
                    yield from _output_sources(
                        source, ctes, rules, ctx, depth + 1, column.name.lower()
                    )


def _ancestors(node: exp.Expr, stop: exp.Expr) -> Iterable[exp.Expr]:
    current = node.parent
    while current is not None and current is not stop:
        yield current
        current = current.parent
    if current is stop:
        yield stop
