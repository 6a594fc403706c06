"""The notification contract (version "1.1"): its models, body, subject, attributes and schema.

No calls and no writes: the body is built from the run alone (its stored `Outcome`), so a
re-published notification is byte-for-byte the first one, with the same `notificationId`.
Publishing it, exactly once per ended run, is `crq.delivery`'s job. docs/notifications.md
documents the contract for subscribers.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from crq.ledger import ErrorInfo, FieldProblem, ResultObject, Run, RunEvent

logger = Logger(child=True)

SUBJECT_LIMIT = 100
# Additive changes bump the minor version, breaking ones the major (docs/notifications.md).
CONTRACT_VERSION: Final = "1.1"

# The word after the spec name in the Subject, and the `status` message attribute.
STATUS_WORDS: dict[RunEvent, str] = {
    RunEvent.QUERY_SUCCEEDED: "SUCCEEDED",
    RunEvent.QUERY_FAILED: "FAILED",
    RunEvent.QUERY_CANCELLED: "CANCELLED",
    RunEvent.QUERY_TIMED_OUT: "TIMED_OUT",
    RunEvent.SPEC_REJECTED: "REJECTED",
    RunEvent.START_FAILED: "START_FAILED",
}

# Message attributes crq always sets; a spec's `notify` attributes cannot replace them.
RESERVED_ATTRIBUTES = ("event", "status", "membershipId", "specName")
# SNS accepts at most 10 message attributes per message.
MAX_ATTRIBUTES = 10


class ContractModel(BaseModel):
    """The base of every notification body model (run and schedule notifications): camelCase
    keys on the wire, snake_case fields, nothing unknown."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        field_title_generator=lambda name, _info: to_camel(name),
        # Built on first use, not at import: a cold start that sends nothing never pays for it.
    )


class NotificationSpec(ContractModel):
    name: str = Field(description="The spec's `name` (default: the file's stem).")
    source: str = Field(description="s3://bucket/key of the spec file.")
    version: str | None = Field(None, description="S3 version id of the spec object.")


class NotificationTrigger(ContractModel):
    type: Literal["s3", "schedule"]
    time: datetime = Field(description="Upload time, or the schedule's scheduled time.")


class NotificationQuery(ContractModel):
    id: str | None = Field(None, description="Protected query id (absent if none started).")
    membership_id: str | None = None
    membership_arn: str | None = None
    status: str | None = Field(None, description="ProtectedQueryStatus when it ended.")
    create_time: datetime | None = None
    attempt: int = Field(description="Which attempt this is, from 1.")
    max_attempts: int = Field(description="Attempts allowed by the spec's maxAttempts.")
    analysis_template_arn: str | None = Field(
        None, description="1.1: the analysis template the query ran, when it ran one."
    )
    result_prefix: str | None = Field(
        None,
        description="1.1: s3://bucket/keyPrefix the request asked results to be written "
        "under, as rendered (an S3 output only).",
    )


class NotificationResult(ContractModel):
    output: dict[str, Any] = Field(description="GetProtectedQuery result.output, as is.")
    objects: list[ResultObject] | None = Field(
        None, description="Files written under the output's S3 location(s): uri and size."
    )
    objects_truncated: bool | None = Field(
        None, description="True when more files exist than the notification lists."
    )
    objects_not_listed: bool | None = Field(
        None,
        description="1.1: true when the output's files could not be listed (no permission, "
        "no such bucket); `objects` is then absent.",
    )


class NotificationError(ContractModel):
    code: str = Field(
        description="A stable machine code: Clean Rooms' exception (ValidationException...) or "
        "query error code, or crq's own (START_NOT_CONFIRMED, DAILY_BUDGET_EXHAUSTED...)."
    )
    reason: str | None = Field(
        None, description="1.1: Clean Rooms' reason, when it gives one (FIELD_VALIDATION_FAILED)."
    )
    message: str
    retryable: bool


class NotificationAttempt(ContractModel):
    query_id: str
    status: str = Field(description="How the attempt's query ended (QUERY_NOT_FOUND: unknown).")
    billed_units: float | None = Field(
        None, description="CRPU hours Clean Rooms billed for it, when it reported them."
    )


class NotificationCost(ContractModel):
    attempts: list[NotificationAttempt] = Field(description="Every attempt that ran a query.")
    total_billed_units: float = Field(description="The sum of the attempts' billed units.")


class Notification(ContractModel):
    """The JSON body of every message crq publishes. Keys that do not apply are left out."""

    version: Literal["1.1"] = CONTRACT_VERSION
    event: RunEvent
    run_id: str = Field(description="1.1: the run (one per trigger), as in `crq status`.")
    notification_id: str = Field(
        description="<runId>:<attempt>:<event>; identical on every re-publish, so consumers "
        "can drop the rare duplicate."
    )
    time: datetime = Field(description="When crq learned how the run ended.")
    spec: NotificationSpec
    trigger: NotificationTrigger
    query: NotificationQuery | None = None
    result: NotificationResult | None = None
    error: NotificationError | None = None
    statistics: dict[str, Any] | None = Field(
        None, description="totalDurationInMillis and billedResourceUtilization.units, as is."
    )
    differential_privacy: dict[str, Any] | None = None
    errors: list[FieldProblem] | None = Field(
        None, description="SPEC_REJECTED: every problem found, with its field path."
    )
    reason: str | None = Field(None, description="QUERY_CANCELLED: why the query was cancelled.")
    cost: NotificationCost | None = Field(
        None, description="1.1: the whole run's cost, each attempt's and the total."
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class _OmittedNotNull(GenerateJsonSchema):
    """Optional keys are left out of a notification, never null: say so in the schema."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        if generated.get("default") is None:
            generated.pop("default", None)
        return generated


COMPATIBILITY = (
    "Compatibility: consumers must ignore keys they do not know (and events they do not "
    "handle). An additive change (a new key, a new event) bumps the minor version (1.0 -> 1.1); "
    "a breaking one (a key removed, renamed or retyped) bumps the major version. This schema "
    "therefore allows unknown keys and any 1.x version; crq's own tests validate exactly."
)


def notification_schema(*, strict: bool = False) -> dict[str, Any]:
    """The JSON Schema of the notification body.

    The published one (schema/notification.schema.json) follows the compatibility policy: it
    allows unknown keys and any 1.x `version`, so a consumer validating with it does not break
    on an additive change. `strict=True` is the exact contract of this version (no unknown
    keys, this version only), which crq's own tests validate against."""
    schema = Notification.model_json_schema(
        by_alias=True, mode="serialization", schema_generator=_OmittedNotNull
    )
    # `version` has a default in the model but is always sent.
    schema["required"] = ["version", *schema.get("required", [])]
    if not strict:
        _allow_unknown_keys(schema)
        schema["properties"]["version"] = {
            "type": "string",
            "pattern": r"^1(\.[0-9]+)?$",
            "description": f"The contract version; this schema describes {CONTRACT_VERSION}.",
        }
        # A new event is additive too: known values are listed, others are allowed.
        schema["properties"]["event"] = {
            "anyOf": [schema["properties"]["event"], {"type": "string"}],
            "description": "See docs/notifications.md; ignore events you do not handle.",
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "crq notification",
        "description": "The JSON body of the SNS messages crq publishes when a run ends "
        "(docs/notifications.md). Keys that do not apply are left out. " + COMPATIBILITY,
    }


def _allow_unknown_keys(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("additionalProperties") is False:
            del node["additionalProperties"]
        for value in node.values():
            _allow_unknown_keys(value)
    elif isinstance(node, list):
        for value in node:
            _allow_unknown_keys(value)


def build_notification(run: Run) -> Notification:
    outcome = run.outcome
    if outcome is None or run.notification_id is None:
        raise ValueError(f"run {run.run_id} has not ended")
    query: NotificationQuery | None = None
    if outcome.event is not RunEvent.SPEC_REJECTED:
        template_arn, result_prefix = _requested(run.request)
        query = NotificationQuery(
            id=run.query_id,
            membership_id=run.membership_id,
            membership_arn=run.membership_arn,
            status=outcome.query_status,
            create_time=run.query_create_time,
            attempt=run.attempt,
            max_attempts=run.max_attempts,
            analysis_template_arn=template_arn,
            result_prefix=result_prefix,
        )
    result = None
    if outcome.result_output is not None:
        result = NotificationResult(
            output=outcome.result_output,
            objects=outcome.objects,
            objects_truncated=outcome.objects_truncated,
            objects_not_listed=outcome.objects_not_listed,
        )
    error = _error(outcome.error)
    cost = None
    if run.attempts:
        cost = NotificationCost(
            attempts=[
                NotificationAttempt(
                    query_id=a.query_id, status=a.status, billed_units=a.billed_units
                )
                for a in run.attempts
            ],
            total_billed_units=round(sum(a.billed_units or 0.0 for a in run.attempts), 6),
        )
    return Notification(
        run_id=run.run_id,
        cost=cost,
        event=outcome.event,
        notification_id=run.notification_id,
        time=outcome.ended_at,
        spec=NotificationSpec(
            name=run.spec_name, source=run.spec_source, version=run.spec_version_id
        ),
        trigger=NotificationTrigger(type=run.trigger_type.value, time=run.trigger_time),
        query=query,
        result=result,
        error=error,
        statistics=outcome.statistics,
        differential_privacy=outcome.differential_privacy,
        errors=outcome.errors,
        reason=outcome.reason,
    )


def _error(error: ErrorInfo | None) -> NotificationError | None:
    if error is None:
        return None
    return NotificationError(
        code=error.code, reason=error.reason, message=error.message, retryable=error.retryable
    )


def _requested(request: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """The analysis template ARN and the S3 result prefix of the (redacted) rendered request."""
    if not request:
        return None, None
    template = (request.get("sqlParameters") or {}).get("analysisTemplateArn")
    output = (request.get("resultConfiguration") or {}).get("outputConfiguration") or {}
    s3 = output.get("s3") or next(
        (
            loc["s3"]
            for loc in (output.get("distribute") or {}).get("locations") or []
            if "s3" in loc
        ),
        None,
    )
    prefix = f"s3://{s3.get('bucket', '')}/{s3.get('keyPrefix', '')}" if s3 else None
    return (template if isinstance(template, str) else None), prefix


def subject(run: Run) -> str:
    """`crq: <spec name> <STATUS>`: ASCII, one line, at most 100 characters (SNS rules)."""
    assert run.outcome is not None
    status = STATUS_WORDS[run.outcome.event]
    name = re.sub(r"[^\x20-\x7e]", "?", run.spec_name).strip() or "spec"
    room = SUBJECT_LIMIT - len("crq: ") - len(status) - 1
    if len(name) > room:
        name = name[: room - 3] + "..."
    return f"crq: {name} {status}"


def attributes(run: Run) -> dict[str, str]:
    assert run.outcome is not None
    attrs = {
        "event": run.outcome.event.value,
        "status": STATUS_WORDS[run.outcome.event],
        "specName": run.spec_name,
    }
    if run.membership_id:
        attrs["membershipId"] = run.membership_id
    for name, value in run.notify_attributes.items():
        if name in RESERVED_ATTRIBUTES or not value:
            continue
        if len(attrs) >= MAX_ATTRIBUTES:
            logger.warning("notify attribute dropped: SNS allows 10", extra={"attribute": name})
            continue
        attrs[name] = value
    return attrs
