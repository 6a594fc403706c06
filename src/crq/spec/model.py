"""The spec's models: the pipeline keys a spec file adds, and the StartProtectedQuery request typed.

`PipelineKeys` (and `ScheduleKeys`) validate what the user wrote; `Spec` is the validated spec
that `crq.spec.load.load_spec` builds, built only from data the checks have accepted.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.functional_validators import AfterValidator
from pydantic_core import PydanticCustomError

from crq.schedule import zone_of
from crq.spec.apimodel import shape
from crq.spec.render import RenderContext

REQUEST_SHAPE = "StartProtectedQueryInput"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
NAME_RULE = "a letter or digit, then letters, digits, '.', '_' or '-', at most 128 characters"
MAX_RUNTIME_MINUTES = 10_080  # one week
MAX_ATTEMPTS = 5
DEFAULT_MAX_ATTEMPTS = 2  # one retry
MAX_FLEXIBLE_WINDOW_MINUTES = 1440  # Scheduler's MaximumWindowInMinutes

# SNS message attributes crq sets itself (crq.notification.RESERVED_ATTRIBUTES; a test keeps them
# equal: importing the notification contract here would make loading a spec pull in Powertools).
RESERVED_NOTIFY_ATTRIBUTES = ("event", "status", "membershipId", "specName")
SNS_MAX_ATTRIBUTES = 10
MAX_NOTIFY_ATTRIBUTES = SNS_MAX_ATTRIBUTES - len(RESERVED_NOTIFY_ATTRIBUTES)
MAX_NOTIFY_VALUE_LENGTH = 256
NOTIFY_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,256}$"


# ---- pipeline keys ---------------------------------------------------------------------------


def _notify_name(name: str) -> str:
    lowered = name.lower()
    if lowered in {reserved.lower() for reserved in RESERVED_NOTIFY_ATTRIBUTES}:
        raise PydanticCustomError(
            "notify_reserved",
            "crq sets this attribute itself ({reserved}); choose another name",
            {"reserved": ", ".join(RESERVED_NOTIFY_ATTRIBUTES)},
        )
    if not re.fullmatch(NOTIFY_NAME_PATTERN, name):
        raise PydanticCustomError(
            "notify_name",
            "an SNS attribute name has 1 to 256 letters, digits, '_', '-' or '.'",
        )
    if lowered.startswith(("aws.", "amazon.")):
        raise PydanticCustomError(
            "notify_name", "SNS attribute names cannot start with AWS. or Amazon."
        )
    if name.startswith(".") or name.endswith(".") or ".." in name:
        raise PydanticCustomError(
            "notify_name",
            "SNS attribute names cannot start or end with '.' or hold '..'",
        )
    return name


def _notify_value(value: str) -> str:
    if not value:
        raise PydanticCustomError("notify_value", "must not be empty (SNS refuses empty values)")
    if any(not char.isprintable() for char in value):
        raise PydanticCustomError("notify_value", "must not hold control characters")
    return value


NotifyName = Annotated[str, AfterValidator(_notify_name)]
NotifyValue = Annotated[
    str, Field(max_length=MAX_NOTIFY_VALUE_LENGTH), AfterValidator(_notify_value)
]


class ScheduleKeys(BaseModel):
    """`schedule:` as a mapping, for the options beyond the expression."""

    # camelCase in spec files, snake_case in Python; the Python names are not accepted in files.
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)

    expression: str = Field(description="cron(...), rate(...) or at(...), as Scheduler reads it.")
    start: str | None = Field(
        None,
        description="ISO 8601 date-time before which it does not fire (without an offset: in "
        "the spec's timezone).",
    )
    end: str | None = Field(
        None,
        description="ISO 8601 date-time after which it does not fire (without an offset: in the "
        "spec's timezone).",
    )
    flexible_window_minutes: Annotated[int, Field(ge=1, le=MAX_FLEXIBLE_WINDOW_MINUTES)] | None = (
        Field(
            None,
            description="Let Scheduler fire up to this many minutes late (spreads load). "
            "Default: off, it fires on time.",
        )
    )
    run_on_upload: bool = Field(
        False, description="Also run once when the spec is uploaded. Default: false."
    )


class PipelineKeys(BaseModel):
    """The keys a spec file adds to the StartProtectedQuery request."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)

    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = Field(
        None,
        description="The spec's name in notifications and the ledger, unique among live "
        "specs. Default: the spec's key under the specs prefix without its extension "
        "(specs/team-a/weekly.yaml -> team-a/weekly).",
    )
    max_runtime_minutes: Annotated[int, Field(ge=1, le=MAX_RUNTIME_MINUTES)] | None = Field(
        None,
        description="Cancel the query after this many minutes. Default: the stack's "
        "CRQ_DEFAULT_MAX_RUNTIME_MINUTES.",
    )
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)] = Field(
        DEFAULT_MAX_ATTEMPTS,
        description="Runs of the query in all when it fails with a retryable error (2: one retry).",
    )
    notify: Annotated[dict[NotifyName, NotifyValue], Field(max_length=MAX_NOTIFY_ATTRIBUTES)] = (
        Field(
            default_factory=dict,
            description="Extra string message attributes of the SNS notifications, for "
            "subscription filter policies.",
        )
    )
    schedule: str | ScheduleKeys | None = Field(
        None,
        description="Run the spec on an EventBridge Scheduler schedule: cron(...), rate(...) or "
        "at(...), or a mapping with expression and options. An upload then sets the schedule "
        "and runs nothing unless runOnUpload is true.",
        examples=["cron(0 6 ? * MON *)"],
    )
    timezone: str | None = Field(
        None,
        description="IANA time zone (e.g. Europe/Berlin) the schedule fires in and placeholders "
        "render in. Default: UTC.",
    )


# As spec files spell them.
PIPELINE_KEYS = tuple(field.alias or name for name, field in PipelineKeys.model_fields.items())


class SpecSchedule(BaseModel):
    """The spec's schedule, checked: what crq creates in EventBridge Scheduler."""

    model_config = ConfigDict(frozen=True, strict=True)

    expression: str
    start: datetime | None = None
    end: datetime | None = None
    flexible_window_minutes: int | None = None
    run_on_upload: bool = False


# ---- the request: the StartProtectedQuery shapes, typed -----------------------------------


class _Shape(BaseModel):
    # Built only from data apimodel.check_shape has accepted; a test keeps these members equal
    # to the botocore model's. Members are camelCase in the request, snake_case in Python.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, alias_generator=to_camel)


class SqlParameters(_Shape):
    query_string: str | None = None
    analysis_template_arn: str | None = None
    parameters: dict[str, str] | None = None


class S3Output(_Shape):
    result_format: str
    bucket: str
    key_prefix: str | None = None
    single_file_output: bool | None = None


class MemberOutput(_Shape):
    account_id: str


class DistributeLocation(_Shape):
    s3: S3Output | None = None
    member: MemberOutput | None = None


class DistributeOutput(_Shape):
    locations: list[DistributeLocation]


class IntermediateTableOutput(_Shape):
    id: str
    arn: str
    name: str


class OutputConfiguration(_Shape):
    s3: S3Output | None = None
    member: MemberOutput | None = None
    distribute: DistributeOutput | None = None
    intermediate_table: IntermediateTableOutput | None = None


class ResultConfiguration(_Shape):
    output_configuration: OutputConfiguration


class WorkerProperties(_Shape):
    spark: dict[str, str] | None = None


class Worker(_Shape):
    type: str | None = None
    number: int | None = None
    properties: WorkerProperties | None = None


class ComputeConfiguration(_Shape):
    worker: Worker | None = None


class Spec(_Shape):
    """A validated spec: the request (placeholders not rendered yet) and the pipeline keys."""

    source: str
    name: str
    type: str = "SQL"
    membership_identifier: str
    sql_parameters: SqlParameters
    result_configuration: ResultConfiguration | None = None
    compute_configuration: ComputeConfiguration | None = None
    query_compute_payer_account_id: str | None = None
    max_runtime_minutes: int | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    notify: dict[str, str] = Field(default_factory=dict)
    schedule: SpecSchedule | None = None
    timezone: str = "UTC"

    def request_template(self) -> dict[str, Any]:
        """The StartProtectedQuery request as written, placeholders unrendered."""
        members = set(request_keys())
        dumped = self.model_dump(by_alias=True, exclude_none=True)
        return {key: value for key, value in dumped.items() if key in members}

    def render_context(self, run_time: datetime, trigger: str) -> RenderContext:
        return RenderContext(
            run_time=run_time, spec_name=self.name, trigger=trigger, zone=zone_of(self.timezone)
        )


def request_keys() -> tuple[str, ...]:
    """The top-level members of the StartProtectedQuery request, as the model has them."""
    return tuple(shape(REQUEST_SHAPE).members)  # type: ignore[attr-defined]
