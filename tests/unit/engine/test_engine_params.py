"""Analysis template parameters: `:name` placeholders become bound values, never SQL text."""

from __future__ import annotations

import duckdb
import pytest

from crq_local.engine.params import Declared, ParameterError, bind, placeholders


def test_placeholders_skip_strings_comments_and_casts() -> None:
    sql = """
        SELECT ':not_a' AS a, x::DATE, "col:umn" -- :nor_this
        /* :nor_that */ FROM t WHERE d BETWEEN :start AND :end_ AND k = :start
    """
    assert placeholders(sql) == ["start", "end_"]


def test_values_are_bound_with_their_types_and_defaults() -> None:
    declared = [Declared("since", "DATE", "2026-01-01"), Declared("n", "INTEGER")]
    bound = bind("SELECT :since + :n AS d", declared, {"n": "3"})
    assert bound.sql == "SELECT CAST($since AS DATE) + CAST($n AS INTEGER) AS d"
    assert bound.values == {"since": "2026-01-01", "n": "3"}
    with duckdb.connect() as con:
        (day,) = con.execute(bound.sql, bound.values).fetchone() or ()
    assert str(day) == "2026-01-04"


def test_a_hostile_value_stays_a_value() -> None:
    bound = bind("SELECT :name AS name", [Declared("name", "VARCHAR")], {"name": "x' OR '1'='1"})
    assert "OR" not in bound.sql
    with duckdb.connect() as con:
        assert con.execute(bound.sql, bound.values).fetchall() == [("x' OR '1'='1",)]


def test_every_problem_is_reported_without_the_value() -> None:
    declared = [Declared("start", "DATE"), Declared("limit", "INTEGER"), Declared("d", "DATE")]
    with pytest.raises(ParameterError) as caught:
        bind("SELECT :start, :limit, :d", declared, {"limit": "ten", "d": "2026-13-45", "x": "1"})
    problems = dict(caught.value.problems)
    assert problems == {
        "x": "is not a parameter of the analysis template",
        "start": "is required (the template gives it no default)",
        "limit": "is not a valid INTEGER value",
        "d": "is not a valid DATE value",
    }
    assert "2026-13-45" not in str(caught.value) and "ten" not in str(caught.value)
