"""Preflight's checks on their own: a fake reader stands for Clean Rooms (the corpus in
tests/preflight_specs covers the same checks through the real handlers and the engine)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crq.errors import CollaborationReadFailed, CollaborationResourceNotFound
from crq.preflight import (
    CachedReader,
    MemberInfo,
    MembershipInfo,
    TemplateInfo,
    TemplateParameter,
    preflight,
    value_problem,
)
from crq.settings import Settings

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
TEMPLATE_ID = "3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64"
ARN = (
    f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}"
    f"/analysistemplate/{TEMPLATE_ID}"
)


class FakeReader:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: set[str] = set()
        self.membership = MembershipInfo(
            id=MEMBERSHIP,
            arn=f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}",
            collaboration_id="c0ffee00-0000-4000-8000-000000000000",
            status="ACTIVE",
            abilities=frozenset({"CAN_QUERY", "CAN_RECEIVE_RESULTS"}),
        )
        self.template: TemplateInfo | None = TemplateInfo(
            arn=ARN,
            format="SQL",
            parameters=(
                TemplateParameter("start_date", "DATE", has_default=True),
                TemplateParameter("end_date", "DATE", has_default=False),
            ),
        )

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise CollaborationReadFailed("ThrottlingException", "slow down")

    def get_membership(self, membership_id: str) -> MembershipInfo:
        self._call("GetMembership")
        return self.membership

    def get_analysis_template(self, membership_id: str, template_id: str) -> TemplateInfo:
        self._call("GetAnalysisTemplate")
        if self.template is None:
            raise CollaborationResourceNotFound("analysis template", template_id)
        return self.template

    def get_collaboration_analysis_template(self, collaboration_id: str, arn: str) -> TemplateInfo:
        self._call("GetCollaborationAnalysisTemplate")
        raise CollaborationResourceNotFound("analysis template", arn)

    def list_members(self, collaboration_id: str) -> list[MemberInfo]:
        self._call("ListMembers")
        return [MemberInfo("222222222222", "ACTIVE", frozenset({"CAN_RECEIVE_RESULTS"}))]


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "table_name": "t",
        "topic_arn": "arn:aws:sns:us-east-1:111111111111:t",
        "specs_bucket": "specs",
        "service_name": "crq",
        "metrics_namespace": "crq",
        "membership_ids": (MEMBERSHIP,),
        "result_bucket_names": ("crq-results",),
    }
    return Settings.model_validate(values | changes)


def request(**parameters: str) -> dict[str, Any]:
    return {
        "membershipIdentifier": MEMBERSHIP,
        "type": "SQL",
        "sqlParameters": {"analysisTemplateArn": ARN, "parameters": parameters},
        "resultConfiguration": {
            "outputConfiguration": {
                "s3": {"resultFormat": "CSV", "bucket": "crq-results", "keyPrefix": "x/"}
            }
        },
    }


def fields(problems: list[Any]) -> list[str]:
    return [p.field for p in problems]


def test_a_request_that_fits_the_collaboration_passes() -> None:
    assert preflight(request(end_date="2026-01-05"), settings(), FakeReader()) == []


def test_a_throttled_read_skips_its_checks_and_never_fails_a_valid_spec() -> None:
    reader = FakeReader()
    reader.fail = {"GetMembership"}
    # the template's checks need the membership: they are skipped too, not failed
    assert preflight(request(), settings(), reader) == []
    assert reader.calls == ["GetMembership"]


def test_a_throttled_template_read_still_checks_the_stack_side() -> None:
    reader = FakeReader()
    reader.fail = {"GetAnalysisTemplate"}
    req = request()
    req["resultConfiguration"]["outputConfiguration"]["s3"]["bucket"] = "elsewhere"
    problems = preflight(req, settings(), reader)
    assert fields(problems) == ["resultConfiguration.outputConfiguration.s3.bucket"]


def test_every_problem_is_reported_and_no_value_is_quoted() -> None:
    problems = preflight(
        request(end_date="31.01.2026", extra="secret-value"), settings(), FakeReader()
    )
    assert sorted(fields(problems)) == [
        "sqlParameters.parameters.end_date",
        "sqlParameters.parameters.extra",
    ]
    assert all("31.01.2026" not in p.message and "secret" not in p.message for p in problems)


def test_a_missing_template_is_named() -> None:
    reader = FakeReader()
    reader.template = None
    assert fields(preflight(request(), settings(), reader)) == ["sqlParameters.analysisTemplateArn"]


def test_a_membership_outside_the_stack_is_not_read() -> None:
    reader = FakeReader()
    problems = preflight(request(end_date="2026-01-05"), settings(membership_ids=("x",)), reader)
    assert fields(problems) == ["membershipIdentifier"]
    assert reader.calls == []


def test_the_cache_reads_each_thing_once_per_ttl() -> None:
    now = [datetime(2026, 1, 5, tzinfo=UTC)]
    reader = FakeReader()
    cached = CachedReader(reader, clock=lambda: now[0], ttl=timedelta(minutes=5))
    for _ in range(10):
        assert preflight(request(end_date="2026-01-05"), settings(), cached) == []
    assert reader.calls == ["GetMembership", "GetAnalysisTemplate"]
    assert cached.calls == 2
    now[0] += timedelta(minutes=5, seconds=1)
    preflight(request(end_date="2026-01-05"), settings(), cached)
    assert cached.calls == 4


def test_the_cache_does_not_remember_failures() -> None:
    reader = FakeReader()
    reader.fail = {"GetMembership"}
    cached = CachedReader(reader, clock=lambda: datetime(2026, 1, 5, tzinfo=UTC))
    preflight(request(), settings(), cached)
    reader.fail = set()
    preflight(request(end_date="2026-01-05"), settings(), cached)
    assert reader.calls == ["GetMembership", "GetMembership", "GetAnalysisTemplate"]


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("2026-01-31", "DATE"),
        (" 2026-1-5 ", "DATE"),
        ("2026", "DATE"),  # Spark reads a year, or a year and month, as a date
        ("2026-03", "DATE"),
        ("2026-01-31T06:00:00", "DATE"),
        ("2026-01", "TIMESTAMP"),
        ("2026-01-31 06:00:00", "TIMESTAMP"),
        ("2026-01-31T06:00:00.123Z", "TIMESTAMP_NTZ"),
        ("2026-01-31 06:00:00+01:00", "TIMESTAMPTZ"),
        ("2026-01-31", "TIMESTAMP"),
        ("06:00", "TIME"),
        ("06:00:00+02", "TIMETZ"),
        ("-32768", "SMALLINT"),
        ("127", "TINYINT"),
        ("2147483647", "INTEGER"),
        ("-9223372036854775808", "BIGINT"),
        ("12.50", "DECIMAL"),
        ("1e-3", "DOUBLE"),
        ("-inf", "FLOAT"),
        ("TRUE", "BOOLEAN"),
        ("anything at all", "VARCHAR"),
        ("", "STRING"),
        ("whatever", "SOME_FUTURE_TYPE"),
    ],
)
def test_values_clean_rooms_accepts_pass(value: str, type_name: str) -> None:
    assert value_problem(value, type_name) is None


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("2026-02-30", "DATE"),
        ("01/31/2026", "DATE"),
        ("2026-13", "DATE"),
        ("20260131", "DATE"),
        ("yesterday", "DATE"),
        ("2026-01-31 24:00:00", "TIMESTAMP"),
        ("2026-13-01 00:00:00", "TIMESTAMP_LTZ"),
        ("6 am", "TIME"),
        ("40000", "SMALLINT"),
        ("300", "TINYINT"),
        ("3000000000", "INT"),
        ("1.0", "BIGINT"),
        ("1,5", "NUMERIC"),
        ("ten", "REAL"),
        ("maybe", "BOOLEAN"),
    ],
)
def test_values_of_the_wrong_type_are_named_without_the_value(value: str, type_name: str) -> None:
    problem = value_problem(value, type_name)
    assert problem is not None and problem.startswith(f"is not a valid {type_name} value")
    assert value not in problem


def test_a_left_out_result_configuration_is_checked_against_the_membership_default() -> None:
    req = request(end_date="2026-01-05")
    del req["resultConfiguration"]
    reader = FakeReader()
    # no default at all: Clean Rooms would refuse it
    assert fields(preflight(req, settings(), reader)) == ["resultConfiguration"]
    # a default in a bucket the stack may read: fine; in another: crq could not list the files
    reader.membership = replace(
        reader.membership,
        has_default_result_configuration=True,
        default_result_bucket="crq-results",
    )
    assert preflight(req, settings(), reader) == []
    reader.membership = replace(reader.membership, default_result_bucket="elsewhere")
    [problem] = preflight(req, settings(), reader)
    assert problem.field == "resultConfiguration" and "default bucket elsewhere" in problem.message
