"""StartProtectedQuery's semantic rules, beyond the model's shapes (which crq.spec.apimodel checks).

These are the seed's rules (one output type; at most one S3 location in `distribute`; never the
caller's own account as a member location; receivers need CAN_RECEIVE_RESULTS) and the
engine's reading of what Clean Rooms refuses for an analytics engine.
"""

from __future__ import annotations

from typing import Any

from crq.spec.apimodel import FieldError

from .errors import AccessDeniedException, ValidationException
from .world import Membership

OUTPUT = "resultConfiguration.outputConfiguration"


def check_caller(membership: Membership) -> None:
    if not membership.active:
        raise AccessDeniedException(
            f"Membership {membership.id} is {membership.membership_status} in collaboration "
            f"{membership.collaboration.name}"
        )
    if not membership.can("CAN_QUERY"):
        raise AccessDeniedException(
            f"Membership {membership.id} does not have the CAN_QUERY ability in collaboration "
            f"{membership.collaboration.name}"
        )


def check_sql_parameters(sql_parameters: dict[str, Any]) -> None:
    has_text = "queryString" in sql_parameters
    has_template = "analysisTemplateArn" in sql_parameters
    if has_text == has_template:
        raise invalid(
            "sqlParameters", "must set exactly one of queryString and analysisTemplateArn"
        )
    if has_text and "parameters" in sql_parameters:
        raise invalid(
            "sqlParameters.parameters", "parameters are only allowed with analysisTemplateArn"
        )


def check_compute(membership: Membership, request: dict[str, Any]) -> None:
    if (
        membership.collaboration.analytics_engine == "CLEAN_ROOMS_SQL"
        and "computeConfiguration" in request
    ):
        raise invalid(
            "computeConfiguration",
            "is only supported by collaborations with the SPARK analytics engine",
            reason="INVALID_CONFIGURATION",
        )


def check_output(membership: Membership, request: dict[str, Any]) -> list[str]:
    """Check the result configuration; return the receiving account ids."""
    if "resultConfiguration" not in request:
        raise invalid(
            "resultConfiguration",
            "is required: the membership has no default result configuration",
        )
    output = request["resultConfiguration"]["outputConfiguration"]
    receivers: list[str] = []
    if "s3" in output:
        _check_s3(membership, output["s3"], f"{OUTPUT}.s3")
        receivers.append(membership.account_id)
    elif "member" in output:
        account = output["member"]["accountId"]
        _check_member(membership, account, f"{OUTPUT}.member.accountId")
        receivers.append(account)
    else:
        receivers += _check_distribute(membership, output["distribute"]["locations"])
    return receivers


def _check_distribute(membership: Membership, locations: list[dict[str, Any]]) -> list[str]:
    path = f"{OUTPUT}.distribute.locations"
    s3_paths = [f"{path}[{i}].s3" for i, loc in enumerate(locations) if "s3" in loc]
    if len(s3_paths) > 1:
        raise invalid(s3_paths[1], "at most one S3 location can be given")
    receivers: list[str] = []
    for i, location in enumerate(locations):
        if "s3" in location:
            _check_s3(membership, location["s3"], f"{path}[{i}].s3")
            receivers.append(membership.account_id)
            continue
        account = location["member"]["accountId"]
        field = f"{path}[{i}].member.accountId"
        if account == membership.account_id:
            raise invalid(field, "the query runner's account cannot be a member location")
        if account in receivers:
            raise invalid(field, "each member can be given once")
        _check_member(membership, account, field)
        receivers.append(account)
    return receivers


def _check_s3(membership: Membership, s3: dict[str, Any], path: str) -> None:
    if not membership.can("CAN_RECEIVE_RESULTS"):
        raise invalid(
            path,
            "the query runner does not have the CAN_RECEIVE_RESULTS ability; "
            "send results to a member that does",
            reason="INVALID_CONFIGURATION",
        )
    if "singleFileOutput" in s3 and membership.collaboration.analytics_engine != "SPARK":
        raise invalid(
            f"{path}.singleFileOutput",
            "is only supported by collaborations with the SPARK analytics engine",
            reason="INVALID_CONFIGURATION",
        )


def _check_member(membership: Membership, account: str, path: str) -> None:
    receiver = membership.collaboration.membership_of(account)
    if receiver is None:
        raise invalid(path, "is not a member of the collaboration")
    if not receiver.active:
        raise invalid(path, f"this member is {receiver.status}", reason="INVALID_CONFIGURATION")
    if not receiver.can("CAN_RECEIVE_RESULTS"):
        raise invalid(
            path,
            "this member does not have the CAN_RECEIVE_RESULTS ability",
            reason="INVALID_CONFIGURATION",
        )


def invalid(
    field: str, message: str, *, reason: str = "FIELD_VALIDATION_FAILED"
) -> ValidationException:
    return ValidationException(
        f"Invalid request: {field}: {message}",
        reason=reason,
        fields=[FieldError(field, message)],
    )
