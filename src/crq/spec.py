"""The spec file: a StartProtectedQuery request, verbatim, plus a few pipeline keys.

`load_spec(data, source)` turns a spec file's bytes into a `Spec` or raises `SpecInvalid` with
every error found (file, field path, reason). `render_request(spec, context)` turns a Spec into
the exact keyword arguments of `start_protected_query` for one run, checked again after its
placeholders are rendered. `redacted_request` hides the sensitive values before a request is
stored or shown.

Validation layers, all run so every error is reported at once:
1. safe_load: bytes -> plain data (size, encoding, YAML/JSON hazards);
2. top-level keys: the request members of the Clean Rooms model, or the pipeline keys;
3. pipeline keys: the `PipelineKeys` pydantic model;
4. placeholders: only in queryString, parameter values and keyPrefix; their syntax;
5. the request, rendered at a probe time: every constraint of the model (apimodel.check_shape)
   and the rules the model cannot express (`_semantic_errors`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.functional_validators import AfterValidator
from pydantic_core import PydanticCustomError

from crq.apimodel import FieldError, check_shape, join, shape
from crq.errors import CrqError
from crq.render import (
    RenderContext,
    TemplateError,
    has_placeholder_syntax,
    parse_template,
)
from crq.safe_load import DocumentInvalid, capped, load_document
from crq.schedule import ScheduleError, build_schedule, shortest_interval, zone_of
from crq.spec_names import DEFAULT_NAME_PATTERN, DEFAULT_NAME_RULE, default_name_for_path

REQUEST_SHAPE = "StartProtectedQueryInput"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
NAME_RULE = "a letter or digit, then letters, digits, '.', '_' or '-', at most 128 characters"
MAX_RUNTIME_MINUTES = 10_080  # one week
MAX_ATTEMPTS = 5
DEFAULT_MAX_ATTEMPTS = 2  # one retry
# The stack's MinScheduleIntervalMinutes default: a spec may not start a query more often.
DEFAULT_MIN_SCHEDULE_INTERVAL_MINUTES = 60
MAX_FLEXIBLE_WINDOW_MINUTES = 1440  # Scheduler's MaximumWindowInMinutes

# SNS message attributes crq sets itself (crq.notification.RESERVED_ATTRIBUTES; a test keeps them
# equal: importing the notification contract here would make loading a spec pull in Powertools).
RESERVED_NOTIFY_ATTRIBUTES = ("event", "status", "membershipId", "specName")
SNS_MAX_ATTRIBUTES = 10
MAX_NOTIFY_ATTRIBUTES = SNS_MAX_ATTRIBUTES - len(RESERVED_NOTIFY_ATTRIBUTES)
MAX_NOTIFY_VALUE_LENGTH = 256
NOTIFY_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,256}$"

# The values that may hold placeholders, by field path; parameter values are sensitive.
PLACEHOLDER_FIELDS = "queryString, parameter values and keyPrefix"
_TEMPLATED = re.compile(
    r"sqlParameters\.queryString"
    r"|sqlParameters\.parameters\..+"
    r"|resultConfiguration\.outputConfiguration\.s3\.keyPrefix"
    r"|resultConfiguration\.outputConfiguration\.distribute\.locations\[\d+\]\.s3\.keyPrefix"
)
_SENSITIVE = re.compile(r"sqlParameters\.parameters\..+")
# Placeholders are checked at load time by rendering them at this moment: a Wednesday in
# September, so names (%A, %B) are as long as they get.
PROBE_TIME = datetime(2000, 9, 27, 23, 59, 59, tzinfo=UTC)
PROBE_TRIGGER = "schedule"
REDACTED = "***"


class SpecInvalid(CrqError):
    """A spec that cannot run as written; `errors` lists every problem, `source` the file."""

    def __init__(self, errors: list[FieldError], *, source: str) -> None:
        self.errors = errors
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}: {error}" for error in self.errors]


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

    model_config = ConfigDict(extra="forbid", strict=True)

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
    flexibleWindowMinutes: Annotated[int, Field(ge=1, le=MAX_FLEXIBLE_WINDOW_MINUTES)] | None = (
        Field(
            None,
            description="Let Scheduler fire up to this many minutes late (spreads load). "
            "Default: off, it fires on time.",
        )
    )
    runOnUpload: bool = Field(
        False, description="Also run once when the spec is uploaded. Default: false."
    )


class PipelineKeys(BaseModel):
    """The keys a spec file adds to the StartProtectedQuery request."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = Field(
        None,
        description="The spec's name in notifications and the ledger, unique among live "
        "specs. Default: the spec's key under the specs prefix without its extension "
        "(specs/team-a/weekly.yaml -> team-a/weekly).",
    )
    maxRuntimeMinutes: Annotated[int, Field(ge=1, le=MAX_RUNTIME_MINUTES)] | None = Field(
        None,
        description="Cancel the query after this many minutes. Default: the stack's "
        "CRQ_DEFAULT_MAX_RUNTIME_MINUTES.",
    )
    maxAttempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)] = Field(
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


PIPELINE_KEYS = tuple(PipelineKeys.model_fields)


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
    # to the botocore model's.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class SqlParameters(_Shape):
    queryString: str | None = None
    analysisTemplateArn: str | None = None
    parameters: dict[str, str] | None = None


class S3Output(_Shape):
    resultFormat: str
    bucket: str
    keyPrefix: str | None = None
    singleFileOutput: bool | None = None


class MemberOutput(_Shape):
    accountId: str


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
    intermediateTable: IntermediateTableOutput | None = None


class ResultConfiguration(_Shape):
    outputConfiguration: OutputConfiguration


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
    membershipIdentifier: str
    sqlParameters: SqlParameters
    resultConfiguration: ResultConfiguration | None = None
    computeConfiguration: ComputeConfiguration | None = None
    queryComputePayerAccountId: str | None = None
    maxRuntimeMinutes: int | None = None
    maxAttempts: int = DEFAULT_MAX_ATTEMPTS
    notify: dict[str, str] = Field(default_factory=dict)
    schedule: SpecSchedule | None = None
    timezone: str = "UTC"

    def request_template(self) -> dict[str, Any]:
        """The StartProtectedQuery request as written, placeholders unrendered."""
        return self.model_dump(include=set(request_keys()), exclude_none=True)

    def render_context(self, run_time: datetime, trigger: str) -> RenderContext:
        return RenderContext(
            run_time=run_time, spec_name=self.name, trigger=trigger, zone=zone_of(self.timezone)
        )


def request_keys() -> tuple[str, ...]:
    """The top-level members of the StartProtectedQuery request, as the model has them."""
    return tuple(shape(REQUEST_SHAPE).members)  # type: ignore[attr-defined]


# ---- the use cases --------------------------------------------------------------------------


def load_spec(
    data: bytes,
    source: str,
    *,
    default_name: str | None = None,
    min_schedule_interval_minutes: int = DEFAULT_MIN_SCHEDULE_INTERVAL_MINUTES,
) -> Spec:
    """A spec file's bytes to a Spec; raises SpecInvalid listing every problem found.

    `default_name` is the name when the file sets none (the start function passes the key
    under the specs prefix, crq.spec_names); by default it is derived from `source`.
    `min_schedule_interval_minutes` (the stack's MinScheduleIntervalMinutes; 0: no limit)
    refuses a schedule that would fire more often."""
    try:
        document = load_document(data, source)
    except DocumentInvalid as exc:
        raise SpecInvalid(exc.errors, source=source) from None

    errors: list[FieldError] = []
    request_members = request_keys()
    allowed = (*request_members, *PIPELINE_KEYS)
    known = {key: value for key, value in document.items() if key in allowed}
    expected = ", ".join(allowed)
    errors.extend(
        FieldError(key, f"unknown field; expected {expected}")
        for key in document
        if key not in known
    )

    # A misplaced placeholder is the one error of its field: what else fails there follows.
    misplaced = _misplaced_placeholders(known)
    errors.extend(misplaced)
    skip = {error.field for error in misplaced}
    pipeline_errors: list[FieldError] = []
    pipeline = _pipeline_keys(known, default_name or default_name_for_path(source), pipeline_errors)
    errors.extend(error for error in pipeline_errors if error.field not in skip)

    schedule, zone = _schedule(pipeline, min_schedule_interval_minutes, pipeline_errors, errors)

    request = {key: value for key, value in known.items() if key in request_members}
    request.setdefault("type", "SQL")
    probe = RenderContext(PROBE_TIME, pipeline.name or "spec", PROBE_TRIGGER, zone_of(zone))
    _checked_render(request, probe, errors, skip=skip)

    if errors:
        raise SpecInvalid(_tidy(errors), source=source)
    try:
        return Spec.model_validate(
            {
                **request,
                "source": source,
                "name": pipeline.name,
                "maxRuntimeMinutes": pipeline.maxRuntimeMinutes,
                "maxAttempts": pipeline.maxAttempts,
                "notify": pipeline.notify,
                "schedule": schedule,
                "timezone": zone,
            }
        )
    except ValidationError as exc:  # the typed shapes lag the botocore model: say which member
        raise SpecInvalid(_tidy(_pydantic_errors(exc)), source=source) from None


def render_request(spec: Spec, context: RenderContext) -> dict[str, Any]:
    """The exact StartProtectedQuery keyword arguments of one run of the spec.

    Raises SpecInvalid if a rendered value breaks a constraint (e.g. a keyPrefix too long on
    that date) or a placeholder cannot be evaluated at that time.
    """
    errors: list[FieldError] = []
    rendered = _checked_render(spec.request_template(), context, errors, skip=set())
    if errors:
        raise SpecInvalid(_tidy(errors), source=spec.source)
    return rendered


def redacted_request(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of a request with sensitive values (query parameter values) replaced by ***."""
    out = dict(request)
    sql = out.get("sqlParameters")
    if isinstance(sql, dict) and isinstance(sql.get("parameters"), dict):
        out["sqlParameters"] = {
            **sql,
            "parameters": {name: REDACTED for name in sql["parameters"]},
        }
    return out


# ---- helpers --------------------------------------------------------------------------------


def _pipeline_keys(
    document: dict[str, Any], default_name: str, errors: list[FieldError]
) -> PipelineKeys:
    """Validate the pipeline keys; on errors, record them and return the defaults."""
    given = {key: document[key] for key in PIPELINE_KEYS if key in document}
    for key, value in list(given.items()):
        if value is None:
            errors.append(FieldError(key, "is empty (null); remove it to use the default"))
            del given[key]
    if "schedule" in given and not isinstance(given["schedule"], str | dict):
        errors.append(
            FieldError(
                "schedule",
                "must be an expression such as cron(0 6 ? * MON *), or a mapping with "
                "expression (and start, end, flexibleWindowMinutes, runOnUpload)",
            )
        )
        del given["schedule"]
    try:
        keys = PipelineKeys.model_validate(given)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(exc))
        keys = PipelineKeys()
    if keys.name is None and "name" not in given:
        if re.fullmatch(DEFAULT_NAME_PATTERN, default_name):
            keys = keys.model_copy(update={"name": default_name})
        else:
            errors.append(
                FieldError(
                    "name",
                    f"the file name does not make a valid spec name ({DEFAULT_NAME_RULE}); "
                    "set name explicitly",
                )
            )
    return keys


def _schedule(
    keys: PipelineKeys,
    min_interval_minutes: int,
    found: list[FieldError],
    errors: list[FieldError],
) -> tuple[SpecSchedule | None, str]:
    """The checked schedule and zone name; problems go to `errors` (fields already reported
    by the key checks in `found` are not checked again)."""
    reported = {error.field.split(".")[0] for error in found}
    zone = "UTC"
    zone_ok = "timezone" not in reported
    if keys.timezone is not None and zone_ok:
        try:
            zone_of(keys.timezone)
            zone = keys.timezone
        except ScheduleError as exc:
            errors.append(FieldError("timezone", str(exc)))
            zone_ok = False
    if keys.schedule is None or "schedule" in reported:
        return None, zone
    given = keys.schedule
    options = given if isinstance(given, ScheduleKeys) else ScheduleKeys(expression=given)
    where = "schedule.expression" if isinstance(given, ScheduleKeys) else "schedule"
    before = len(errors)
    start = _instant(options.start, zone, "schedule.start", errors)
    end = _instant(options.end, zone, "schedule.end", errors)
    if len(errors) > before or not zone_ok:
        return None, zone
    try:
        built = build_schedule(options.expression, zone, start=start, end=end)
    except ScheduleError as exc:
        field = "schedule.end" if "end must be after" in str(exc) else where
        errors.append(FieldError(field, str(exc)))
        return None, zone
    gap = shortest_interval(built.expression, (start or datetime.now(UTC)).date())
    if min_interval_minutes and gap is not None and gap < timedelta(minutes=min_interval_minutes):
        errors.append(
            FieldError(
                where,
                f"fires every {_minutes(gap)} at its most frequent; this stack allows at most "
                f"one run every {_minutes(timedelta(minutes=min_interval_minutes))} "
                "(MinScheduleIntervalMinutes)",
            )
        )
        return None, zone
    return (
        SpecSchedule(
            expression=options.expression,
            start=start,
            end=end,
            flexible_window_minutes=options.flexibleWindowMinutes,
            run_on_upload=options.runOnUpload,
        ),
        zone,
    )


def _instant(text: str | None, zone: str, field: str, errors: list[FieldError]) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        errors.append(FieldError(field, "must be an ISO 8601 date-time, e.g. 2027-01-31T06:00:00"))
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone_of(zone))
    return value.astimezone(UTC)


def _minutes(gap: timedelta) -> str:
    minutes = int(gap.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} day(s)"
    if minutes % 60 == 0:
        return f"{minutes // 60} hour(s)"
    return f"{minutes} minute(s)"


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in a document, with its field path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, join(path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, join(path, i))
    elif isinstance(value, str):
        yield path, value


def _misplaced_placeholders(document: dict[str, Any]) -> list[FieldError]:
    return [
        FieldError(path, f"placeholders ({{{{ ... }}}}) are allowed only in {PLACEHOLDER_FIELDS}")
        for path, value in _strings(document)
        if "{{" in value and not _TEMPLATED.fullmatch(path)
    ]


def _map_strings(value: Any, path: str, fn: Callable[[str, str], str]) -> Any:
    if isinstance(value, dict):
        return {key: _map_strings(item, join(path, key), fn) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, join(path, i), fn) for i, item in enumerate(value)]
    if isinstance(value, str):
        return fn(path, value)
    return value


def _render(
    request: dict[str, Any],
    context: RenderContext,
    errors: list[FieldError],
    rendered_paths: set[str] | None = None,
) -> dict[str, Any]:
    """The request with the placeholders of templated fields rendered; problems go to errors."""

    def render_one(path: str, value: str) -> str:
        if not _TEMPLATED.fullmatch(path) or not has_placeholder_syntax(value):
            return value
        sensitive = bool(_SENSITIVE.fullmatch(path))
        try:
            template = parse_template(value)
            result = template.render(context)
        except TemplateError as exc:
            errors.extend(
                FieldError(path, issue.describe(value, sensitive=sensitive)) for issue in exc.issues
            )
            return value
        if rendered_paths is not None:
            rendered_paths.add(path)
        return result

    rendered: dict[str, Any] = _map_strings(request, "", render_one)
    return rendered


def _checked_render(
    request: dict[str, Any], context: RenderContext, errors: list[FieldError], skip: set[str]
) -> dict[str, Any]:
    """Render the request at `context` and check the result; problems go to `errors`.

    Fields in `skip`, and fields whose placeholders failed, are already reported: the checks of
    the rendered request leave them out rather than say the same thing twice.
    """
    found: list[FieldError] = []
    rendered_paths: set[str] = set()
    rendered = _render(request, context, found, rendered_paths)
    skip = skip | {error.field for error in found}
    for error in check_shape(REQUEST_SHAPE, rendered) + _semantic_errors(rendered):
        if error.field in skip:
            continue
        if error.field in rendered_paths:
            error = FieldError(error.field, f"{error.message} (once its placeholders are rendered)")
        elif error.message == "must be a string" and _is_number(_value_at(rendered, error.field)):
            # YAML reads an unquoted 111111111111 as a number: say how to write it.
            error = FieldError(error.field, "must be a string: put the number in quotes")
        found.append(error)
    errors.extend(found)
    return rendered


_PATH_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def _value_at(document: Any, path: str) -> Any:
    """The value at a field path, or None if the path does not lead anywhere."""
    node = document
    for index, key in _PATH_PART.findall(path):
        if index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        elif key and isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _semantic_errors(request: dict[str, Any]) -> list[FieldError]:
    """What the seed documents but the model cannot express."""
    errors: list[FieldError] = []
    sql = request.get("sqlParameters")
    if isinstance(sql, dict):
        has_query, has_template = "queryString" in sql, "analysisTemplateArn" in sql
        if has_query and has_template:
            errors.append(
                FieldError(
                    "sqlParameters",
                    "set queryString or analysisTemplateArn, not both",
                )
            )
        elif not has_query and not has_template:
            errors.append(
                FieldError(
                    "sqlParameters",
                    "set queryString (SQL) or analysisTemplateArn (an analysis template)",
                )
            )
        query = sql.get("queryString")
        if isinstance(query, str) and not query.strip():
            errors.append(FieldError("sqlParameters.queryString", "is empty"))
        if "parameters" in sql and not has_template:
            errors.append(
                FieldError(
                    "sqlParameters.parameters",
                    "parameters apply to an analysis template only: set analysisTemplateArn",
                )
            )
    result = request.get("resultConfiguration")
    output = result.get("outputConfiguration") if isinstance(result, dict) else None
    distribute = output.get("distribute") if isinstance(output, dict) else None
    locations = distribute.get("locations") if isinstance(distribute, dict) else None
    if isinstance(locations, list):
        path = "resultConfiguration.outputConfiguration.distribute.locations"
        s3_locations = [
            i
            for i, location in enumerate(locations)
            if isinstance(location, dict) and "s3" in location
        ]
        errors.extend(
            FieldError(
                join(join(path, i), "s3"),
                f"at most one S3 location (the first is locations[{s3_locations[0]}])",
            )
            for i in s3_locations[1:]
        )
    return errors


_PYDANTIC_MESSAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "int_type": lambda ctx: "must be an integer",
    "string_type": lambda ctx: "must be a string",
    "bool_type": lambda ctx: "must be a boolean",
    "dict_type": lambda ctx: "must be an object",
    "model_type": lambda ctx: "must be an object",
    "list_type": lambda ctx: "must be a list",
    "missing": lambda ctx: "is required",
    "extra_forbidden": lambda ctx: "unknown field",
    "greater_than_equal": lambda ctx: f"must be at least {ctx['ge']}",
    "less_than_equal": lambda ctx: f"must be at most {ctx['le']}",
    "string_too_long": lambda ctx: f"must have at most {ctx['max_length']} characters",
    "too_long": lambda ctx: f"must have at most {ctx['max_length']} entries",
    "string_pattern_mismatch": lambda ctx: f"must be {NAME_RULE}",
}


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        if loc[:2] == ("schedule", "str"):
            continue  # `schedule` is a mapping here: the string branch's complaint is noise
        path = ""
        for part in loc:
            if part not in ("[key]", "ScheduleKeys"):
                path = join(path, part)
        message = _PYDANTIC_MESSAGES.get(error["type"])
        errors.append(FieldError(path, message(error.get("ctx", {})) if message else error["msg"]))
    return errors


def _tidy(errors: list[FieldError]) -> list[FieldError]:
    """Drop repeats, keep the order found, and cap the list (a notification has a size limit)."""
    return capped(list(dict.fromkeys(errors)))
