"""The model-driven checks: each kind of constraint the Clean Rooms model declares is enforced."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from crq.spec.apimodel import FieldError, check_shape, json_schema

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
VALID: dict[str, Any] = {
    "type": "SQL",
    "membershipIdentifier": MEMBERSHIP,
    "sqlParameters": {"queryString": "SELECT 1"},
    "resultConfiguration": {
        "outputConfiguration": {
            "s3": {"resultFormat": "CSV", "bucket": "results.example-1", "keyPrefix": "a/b=1"}
        }
    },
    "computeConfiguration": {"worker": {"type": "CR.4X", "number": 16}},
}


def errors_for(**changes: Any) -> list[FieldError]:
    request = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = request
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return check_shape("StartProtectedQueryInput", request)


def test_a_valid_request_has_no_errors() -> None:
    assert check_shape("StartProtectedQueryInput", VALID) == []


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"type": "PYTHON"}, "type", "must be one of SQL"),
        ({"membershipIdentifier": MEMBERSHIP.upper()}, "membershipIdentifier", "lowercase UUID"),
        ({"membershipIdentifier": "abc"}, "membershipIdentifier", "at least 36 characters"),
        (
            {"sqlParameters__queryString": "x" * 500_001},
            "sqlParameters.queryString",
            "at most 500000",
        ),
        (
            {"sqlParameters__parameters": {"bad-name": "v"}},
            "sqlParameters.parameters.bad-name",
            "pattern",
        ),
        (
            {"sqlParameters__parameters": {"p": "v" * 1001}},
            "sqlParameters.parameters.p",
            "at most 1000 characters",
        ),
        (
            {"resultConfiguration__outputConfiguration__s3__bucket": "Bad_Bucket"},
            "resultConfiguration.outputConfiguration.s3.bucket",
            "is not a valid S3 bucket name",
        ),
        (
            {"resultConfiguration__outputConfiguration__s3__bucket": "192.168.1.1"},
            "resultConfiguration.outputConfiguration.s3.bucket",
            "is not a valid S3 bucket name",
        ),
        (
            {"resultConfiguration__outputConfiguration__s3__keyPrefix": "has space"},
            "resultConfiguration.outputConfiguration.s3.keyPrefix",
            "may hold only letters, digits",
        ),
        (
            {"resultConfiguration__outputConfiguration__s3__resultFormat": "JSON"},
            "resultConfiguration.outputConfiguration.s3.resultFormat",
            "CSV, PARQUET",
        ),
        (
            {"computeConfiguration__worker__number": 1},
            "computeConfiguration.worker.number",
            "at least 2",
        ),
        (
            {"computeConfiguration__worker__number": 5000},
            "computeConfiguration.worker.number",
            "at most 1024",
        ),
        (
            {"computeConfiguration__worker__number": True},
            "computeConfiguration.worker.number",
            "integer",
        ),
        (
            {"computeConfiguration__worker__number": "16"},
            "computeConfiguration.worker.number",
            "integer",
        ),
        ({"sqlParameters": "SELECT 1"}, "sqlParameters", "must be an object"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
def test_each_constraint_names_the_field(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    errors = errors_for(**changes)
    assert [e.field for e in errors] == [field], errors
    assert fragment in errors[0].message


def test_tagged_unions_need_exactly_one_member() -> None:
    both = errors_for(
        resultConfiguration__outputConfiguration={
            "s3": VALID["resultConfiguration"]["outputConfiguration"]["s3"],
            "member": {"accountId": "222222222222"},
        }
    )
    assert [(e.field, "not s3 and member" in e.message) for e in both] == [
        ("resultConfiguration.outputConfiguration", True)
    ]
    none = errors_for(resultConfiguration__outputConfiguration={})
    assert [e.field for e in none] == ["resultConfiguration.outputConfiguration"]
    assert "exactly one of s3, member, distribute" in none[0].message


def test_lists_are_checked_item_by_item() -> None:
    errors = errors_for(
        resultConfiguration__outputConfiguration={
            "distribute": {"locations": [{"member": {"accountId": "222222222222"}}, {"member": {}}]}
        }
    )
    assert errors == [
        FieldError(
            "resultConfiguration.outputConfiguration.distribute.locations[1].member.accountId",
            "is required",
        )
    ]
    empty = errors_for(resultConfiguration__outputConfiguration={"distribute": {"locations": []}})
    assert [e.message for e in empty] == ["must have at least 1 item"]


def test_every_error_is_reported_not_just_the_first() -> None:
    errors = check_shape("StartProtectedQueryInput", {"type": 1, "extra": True})
    fields = sorted(e.field for e in errors)
    assert fields == ["extra", "membershipIdentifier", "sqlParameters", "type"]


def test_messages_never_echo_a_value() -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    errors = errors_for(sqlParameters__parameters={"p": secret * 100, secret: "x"})
    assert errors
    assert all(secret not in e.message for e in errors)


def test_the_json_schema_agrees_with_the_checks() -> None:
    schema = json_schema("StartProtectedQueryInput")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(VALID)) == []
    for changes in (
        {"resultConfiguration__outputConfiguration__s3__keyPrefix": "has space"},
        {"computeConfiguration__worker__number": 1},
        {"surprise": 1},
    ):
        request = copy.deepcopy(VALID)
        *parents, last = next(iter(changes)).split("__")
        node = request
        for key in parents:
            node = node[key]
        node[last] = next(iter(changes.values()))
        assert list(validator.iter_errors(request)), changes


def test_a_bucket_name_is_explained_in_words_not_a_regex() -> None:
    errors = check_shape(
        "StartProtectedQueryInput",
        {
            "type": "SQL",
            "membershipIdentifier": "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10",
            "sqlParameters": {"queryString": "SELECT 1"},
            "resultConfiguration": {
                "outputConfiguration": {"s3": {"resultFormat": "CSV", "bucket": "s3://my-bucket"}}
            },
        },
    )
    [error] = errors
    assert "(?!" not in error.message and "lowercase letters" in error.message
