"""Spec files: the bad-spec corpus, the good specs, rendering a request, sensitive values."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import crq.spec.safe_load
from crq.spec import Spec, SpecInvalid, load_spec, redacted_request, render_request
from crq.spec.apimodel import FieldError, shape
from crq.spec.model import (
    RESERVED_NOTIFY_ATTRIBUTES,
    SNS_MAX_ATTRIBUTES,
    ComputeConfiguration,
    DistributeLocation,
    MemberOutput,
    OutputConfiguration,
    ResultConfiguration,
    S3Output,
    SqlParameters,
    Worker,
)
from crq.spec.request import REDACTED

TESTS = Path(__file__).resolve().parents[2]
BAD = TESTS / "bad_specs"
GOOD = TESTS / "good_specs"
BAD_EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((BAD / "expected.yaml").read_text())
GOOD_EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((GOOD / "expected.yaml").read_text())
GOOD_RUN_TIME = datetime(2026, 1, 5, 6, 15, tzinfo=UTC)
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
TEMPLATE_ARN = (
    f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}"
    "/analysistemplate/3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64"
)


def source_of(name: str) -> str:
    return f"s3://crq-specs/specs/{name}"


def assert_errors(
    errors: list[FieldError],
    expected: list[list[str]],
    *,
    exact: bool,
    compare_message: bool = True,
) -> None:
    remaining = list(errors)
    for field, fragment in expected:
        match = next(
            (
                e
                for e in remaining
                if e.field == field and (not compare_message or fragment in e.message)
            ),
            None,
        )
        assert match is not None, f"no error on {field!r} containing {fragment!r} in {errors}"
        remaining.remove(match)
    if exact:
        assert not remaining, f"unexpected errors: {remaining}"


def rejected(name: str) -> SpecInvalid:
    with pytest.raises(SpecInvalid) as caught:
        load_spec((BAD / name).read_bytes(), source_of(name))
    return caught.value


# ---- the bad-spec corpus (issue 5, guarantee 7) -------------------------------------------


def test_the_corpus_is_complete_and_large_enough() -> None:
    files = {path.name for path in BAD.iterdir() if path.name != "expected.yaml"}
    assert files == set(BAD_EXPECTED), "every corpus file needs an entry in expected.yaml"
    assert len(files) >= 45


@pytest.mark.parametrize("name", sorted(BAD_EXPECTED))
def test_each_bad_spec_is_rejected_with_precise_errors(name: str) -> None:
    # Given a bad spec file, when it is loaded, then SpecInvalid (never anything else) names
    # the file and exactly the expected fields and reasons.
    entry = BAD_EXPECTED[name]
    exc = rejected(name)
    assert exc.source == source_of(name)
    assert exc.errors, "a rejection always says why"
    assert all(line.startswith(source_of(name) + ": ") for line in exc.lines())
    if "errors" in entry:
        assert_errors(exc.errors, entry["errors"], exact=True)
    else:
        assert_errors(exc.errors, entry["includes"], exact=False)


YAML_CORPUS = sorted(
    name
    for name in BAD_EXPECTED
    if name.endswith((".yaml", ".yml")) and "errors" in BAD_EXPECTED[name]
)


@pytest.mark.parametrize("name", YAML_CORPUS)
def test_pure_python_yaml_parser_rejects_the_same_way(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lambda's PyYAML may lack libyaml: the fallback parser must find the same problems.
    # Syntax errors are worded by each parser, so only their fields are compared.
    monkeypatch.setattr(crq.spec.safe_load, "_make_parser", crq.spec.safe_load._PyParser)
    expected = BAD_EXPECTED[name]["errors"]
    syntax = any(fragment.startswith("invalid YAML") for _, fragment in expected)
    exc = rejected(name)
    assert_errors(exc.errors, expected, exact=True, compare_message=not syntax)


def test_every_error_is_reported_not_just_the_first() -> None:
    exc = rejected("every-error-at-once.yaml")
    assert len({error.field for error in exc.errors}) == 6


def test_billion_laughs_is_refused_without_expanding() -> None:
    exc = rejected("billion-laughs.yaml")
    # One problem, one message: the first anchor, not one line per alias.
    assert [(e.field, e.message) for e in exc.errors] == [
        ("notify.a", "YAML anchors and aliases are not allowed (line 5, column 6)")
    ]


def test_mutated_specs_never_raise_anything_but_spec_invalid() -> None:
    # Random damage to the good and bad specs (bytes changed, cut, repeated, hazards spliced
    # in): load_spec accepts the result or raises SpecInvalid with errors; nothing else escapes.
    rng = random.Random(20260105)
    seeds = [
        path.read_bytes()
        for directory in (GOOD, BAD)
        for path in sorted(directory.iterdir())
        if path.name != "expected.yaml" and path.stat().st_size < 30_000
    ]
    hazards = [b"{{", b"}}", b"&a ", b"*a", b"!!python/object ", b"<<: ", b"NaN", b"\n- "]
    hazards += [b":", b'"', b"'", b"[", b"{", b"\x00", b"\xff", b"\t", b"---\n", b"? "]
    outcomes = {"accepted": 0, "rejected": 0}
    for i in range(1000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data) + 1)
            match rng.randrange(4):
                case 0:
                    data[pos : pos + 1] = bytes([rng.randrange(256)])
                case 1:
                    del data[pos : pos + rng.randint(1, 40)]
                case 2:
                    data[pos:pos] = data[: rng.randint(1, 60)]
                case _:
                    data[pos:pos] = rng.choice(hazards)
        name = f"fuzz{i}" + rng.choice([".yaml", ".json", ".yml"])
        try:
            load_spec(bytes(data), source_of(name))
            outcomes["accepted"] += 1
        except SpecInvalid as exc:
            assert exc.errors
            assert all(isinstance(error, FieldError) for error in exc.errors)
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 500


# ---- good specs --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOOD_EXPECTED))
def test_good_specs_load_and_render_exactly(name: str) -> None:
    expected = GOOD_EXPECTED[name]
    spec = load_spec((GOOD / name).read_bytes(), source_of(name))
    assert spec.name == expected["name"]
    assert spec.max_attempts == expected["maxAttempts"]
    assert spec.max_runtime_minutes == expected["maxRuntimeMinutes"]
    assert spec.notify == expected["notify"]
    request = render_request(spec, spec.render_context(GOOD_RUN_TIME, "schedule"))
    assert request == expected["request"]


def test_every_good_spec_has_an_expected_rendering() -> None:
    files = {path.name for path in GOOD.iterdir() if path.name != "expected.yaml"}
    assert files == set(GOOD_EXPECTED)


def spec_bytes(extra: str = "", sql: str | None = None) -> bytes:
    sql = sql if sql is not None else "sqlParameters:\n  queryString: SELECT 1\n"
    return (f"membershipIdentifier: {MEMBERSHIP}\n" + sql + extra).encode()


def test_the_example_in_the_spec_documentation_loads_and_renders() -> None:
    doc = (TESTS.parent / "docs" / "spec.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = load_spec(example.encode(), "s3://crq-specs/specs/weekly-overlap.yaml")
    request = render_request(spec, spec.render_context(GOOD_RUN_TIME, "schedule"))
    assert request["sqlParameters"]["parameters"] == {
        "start_date": "2025-12-29",
        "end_date": "2026-01-04",
    }
    assert request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"] == (
        "weekly-overlap/2026/01/05"
    )
    assert (spec.max_runtime_minutes, spec.max_attempts, spec.notify) == (90, 2, {"team": "growth"})


def test_defaults_apply_when_keys_are_absent() -> None:
    spec = load_spec(spec_bytes(), "s3://b/specs/team-a/daily.report.yaml")
    assert spec.name == "team-a/daily.report"  # the key under specs/, folders kept
    assert spec.type == "SQL"
    assert spec.max_attempts == 2
    assert spec.max_runtime_minutes is None
    assert spec.notify == {}
    assert spec.source == "s3://b/specs/team-a/daily.report.yaml"
    assert spec.request_template() == {
        "type": "SQL",
        "membershipIdentifier": MEMBERSHIP,
        "sqlParameters": {"queryString": "SELECT 1"},
    }


def test_an_explicit_name_wins_over_the_file_stem() -> None:
    spec = load_spec(spec_bytes("name: weekly-overlap\n"), "specs/_draft copy.yaml")
    assert spec.name == "weekly-overlap"


def test_the_extension_decides_the_format_case_insensitively() -> None:
    data = b'{"membershipIdentifier": "%s", "sqlParameters": {"queryString": "x"}}' % (
        MEMBERSHIP.encode()
    )
    assert load_spec(data, "s3://b/specs/X.JSON").name == "X"
    assert load_spec(data, "s3://b/specs/x.yml").name == "x"  # JSON is YAML too


def test_a_spec_of_exactly_the_size_limit_loads() -> None:
    head = spec_bytes(sql="sqlParameters:\n  queryString: SELECT 1 -- ")
    data = head + b"x" * (262_144 - len(head) - 1) + b"\n"
    assert len(data) == 262_144
    assert load_spec(data, "s3://b/specs/big.yaml").sql_parameters.query_string is not None
    with pytest.raises(SpecInvalid, match="262145 bytes"):
        load_spec(data + b" ", "s3://b/specs/big.yaml")


def test_membership_account_id_hint_only_for_numbers() -> None:
    data = spec_bytes(
        "resultConfiguration:\n  outputConfiguration:\n    member: {accountId: abc}\n"
    )
    with pytest.raises(SpecInvalid) as caught:
        load_spec(data, "x.yaml")
    assert [e.message for e in caught.value.errors] == [
        "must have at least 12 characters"  # a string that is wrong, not a number to quote
    ]


# ---- rendering -----------------------------------------------------------------------------


def template_spec(start: str, end: str, key_prefix: str = "r/{{ run_date }}") -> Spec:
    sql = (
        f"sqlParameters:\n  analysisTemplateArn: {TEMPLATE_ARN}\n  parameters:\n"
        f"    start_date: '{start}'\n    end_date: '{end}'\n"
    )
    out = (
        "resultConfiguration:\n  outputConfiguration:\n    s3:\n"
        f"      resultFormat: CSV\n      bucket: crq-results\n      keyPrefix: '{key_prefix}'\n"
    )
    return load_spec(spec_bytes(out, sql=sql), "s3://b/specs/overlap.yaml")


def test_render_uses_the_run_time_and_never_changes_the_spec() -> None:
    spec = template_spec("{{ run_date - 7d }}", "{{ run_date }}")
    first = render_request(spec, spec.render_context(datetime(2026, 3, 1, tzinfo=UTC), "s3"))
    second = render_request(spec, spec.render_context(datetime(2026, 3, 8, tzinfo=UTC), "s3"))
    assert first["sqlParameters"]["parameters"] == {
        "start_date": "2026-02-22",
        "end_date": "2026-03-01",
    }
    assert second["sqlParameters"]["parameters"]["start_date"] == "2026-03-01"
    assert first["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"] == (
        "r/2026-03-01"
    )
    assert spec.sql_parameters.parameters == {
        "start_date": "{{ run_date - 7d }}",
        "end_date": "{{ run_date }}",
    }


def test_render_converts_the_run_time_to_utc() -> None:
    from datetime import timedelta, timezone

    spec = template_spec("{{ run_date }}", "{{ run_date }}")
    late_in_new_york = datetime(2026, 3, 1, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    request = render_request(spec, spec.render_context(late_in_new_york, "schedule"))
    assert request["sqlParameters"]["parameters"]["end_date"] == "2026-03-02"


def test_a_value_that_only_fails_at_run_time_is_rejected_by_render_request() -> None:
    # 99999 weeks before a run in 1900 is before year 1: the calendar ends, so does the run.
    spec = template_spec("{{ run_date - 99999w }}", "{{ run_date }}")
    with pytest.raises(SpecInvalid) as caught:
        render_request(spec, spec.render_context(datetime(1900, 1, 1, tzinfo=UTC), "s3"))
    assert caught.value.source == "s3://b/specs/overlap.yaml"
    assert caught.value.errors == [
        FieldError(
            "sqlParameters.parameters.start_date",
            "placeholder at character 1: the offset leaves the calendar",
        )
    ]


def test_rendered_values_are_checked_against_the_model_at_run_time() -> None:
    # %B is "September" at the load-time probe; the run renders "May": both fit. A prefix that
    # is too long once rendered is refused at load time already, naming the field.
    with pytest.raises(SpecInvalid) as caught:
        template_spec("x", "y", key_prefix="a" * 500 + "/{{ run_time | %B-%A }}")
    assert caught.value.errors == [
        FieldError(
            "resultConfiguration.outputConfiguration.s3.keyPrefix",
            "must have at most 512 characters (once its placeholders are rendered)",
        )
    ]


def test_redacted_request_hides_parameter_values_only() -> None:
    spec = template_spec("2026-01-01", "{{ run_date }}")
    request = render_request(spec, spec.render_context(GOOD_RUN_TIME, "s3"))
    redacted = redacted_request(request)
    assert redacted["sqlParameters"]["parameters"] == {
        "start_date": REDACTED,
        "end_date": REDACTED,
    }
    assert redacted["sqlParameters"]["analysisTemplateArn"] == TEMPLATE_ARN
    assert redacted["resultConfiguration"] == request["resultConfiguration"]
    assert request["sqlParameters"]["parameters"]["start_date"] == "2026-01-01"  # a copy
    direct = {"type": "SQL", "sqlParameters": {"queryString": "SELECT 1"}}
    assert redacted_request(direct) == direct


# ---- sensitive values never echoed --------------------------------------------------------

SECRET = "s3cr3tV4lue"


@pytest.mark.parametrize(
    "value",
    [
        SECRET * 100,  # too long for the model
        "{{ " + SECRET + " }}",  # unknown variable
        "{{ run_date + 1" + SECRET + " }}",  # unknown unit
        "{{ run_date | %Y" + SECRET + "%Q }}",  # bad directive
        SECRET + " {{ run_date",  # unclosed
        SECRET + " }}",  # stray closing braces
    ],
)
def test_error_messages_never_echo_a_parameter_value(value: str) -> None:
    sql = (
        f"sqlParameters:\n  analysisTemplateArn: {TEMPLATE_ARN}\n  parameters:\n"
        f"    token: '{value}'\n"
    )
    with pytest.raises(SpecInvalid) as caught:
        load_spec(spec_bytes(sql=sql), "s3://b/specs/x.yaml")
    assert [error.field for error in caught.value.errors] == ["sqlParameters.parameters.token"]
    assert SECRET not in str(caught.value)


# ---- contracts with other parts ------------------------------------------------------------


def test_reserved_notify_attributes_match_the_notification_contract() -> None:
    from crq import notification

    assert RESERVED_NOTIFY_ATTRIBUTES == notification.RESERVED_ATTRIBUTES
    assert SNS_MAX_ATTRIBUTES == notification.MAX_ATTRIBUTES


@pytest.mark.parametrize(
    ("model", "shape_name"),
    [
        (Spec, "StartProtectedQueryInput"),
        (SqlParameters, "ProtectedQuerySQLParameters"),
        (ResultConfiguration, "ProtectedQueryResultConfiguration"),
        (OutputConfiguration, "ProtectedQueryOutputConfiguration"),
        (S3Output, "ProtectedQueryS3OutputConfiguration"),
        (MemberOutput, "ProtectedQueryMemberOutputConfiguration"),
        (DistributeLocation, "ProtectedQueryDistributeOutputConfigurationLocation"),
        (ComputeConfiguration, "ComputeConfiguration"),
        (Worker, "WorkerComputeConfiguration"),
    ],
)
def test_typed_shapes_follow_the_botocore_model(model: type, shape_name: str) -> None:
    # A newer botocore adding a member makes this fail, rather than specs using it.
    pipeline_fields = {
        "source",
        "name",
        "maxRuntimeMinutes",
        "maxAttempts",
        "notify",
        "schedule",
        "timezone",
    }
    # The members as the request spells them (the Python attributes are snake_case).
    members = {field.alias or name for name, field in model.model_fields.items()}  # type: ignore[attr-defined]
    fields = members - (pipeline_fields if model is Spec else set())
    assert fields == set(shape(shape_name).members)  # type: ignore[attr-defined]


def test_importing_the_spec_module_does_not_load_boto() -> None:
    code = (
        "import sys, crq.spec.load, crq.spec.render, crq.spec.safe_load;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
