"""The validation pipeline: a spec file's bytes to a `Spec`, or `SpecInvalid` with every problem.

Layers, all run so every error is reported at once:
1. safe_load: bytes -> plain data (size, encoding, YAML/JSON hazards);
2. top-level keys: the request members of the Clean Rooms model, or the pipeline keys;
3. pipeline keys: the `PipelineKeys` pydantic model, then the schedule and timezone;
4. placeholders: only in queryString, parameter values and keyPrefix; their syntax;
5. the request, rendered at a probe time: every constraint of the model (apimodel.check_shape)
   and the rules the model cannot express (crq.spec.request).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from crq.schedule import ScheduleError, build_schedule, shortest_interval, zone_of
from crq.spec.apimodel import FieldError
from crq.spec.model import (
    PIPELINE_KEYS,
    PipelineKeys,
    ScheduleKeys,
    Spec,
    SpecSchedule,
    request_keys,
)
from crq.spec.names import DEFAULT_NAME_PATTERN, DEFAULT_NAME_RULE, default_name_for_path
from crq.spec.problems import SpecInvalid, field_errors, tidy
from crq.spec.render import RenderContext
from crq.spec.request import checked_render, misplaced_placeholders
from crq.spec.safe_load import DocumentInvalid, load_document

# The stack's MinScheduleIntervalMinutes default: a spec may not start a query more often.
DEFAULT_MIN_SCHEDULE_INTERVAL_MINUTES = 60
# Placeholders are checked at load time by rendering them at this moment: a Wednesday in
# September, so names (%A, %B) are as long as they get.
PROBE_TIME = datetime(2000, 9, 27, 23, 59, 59, tzinfo=UTC)
PROBE_TRIGGER = "schedule"


def load_spec(
    data: bytes,
    source: str,
    *,
    default_name: str | None = None,
    min_schedule_interval_minutes: int = DEFAULT_MIN_SCHEDULE_INTERVAL_MINUTES,
) -> Spec:
    """A spec file's bytes to a Spec; raises SpecInvalid listing every problem found.

    `default_name` is the name when the file sets none (the start function passes the key
    under the specs prefix, crq.spec.names); by default it is derived from `source`.
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
    misplaced = misplaced_placeholders(known)
    errors.extend(misplaced)
    skip = {error.field for error in misplaced}
    pipeline_errors: list[FieldError] = []
    pipeline = _pipeline_keys(known, default_name or default_name_for_path(source), pipeline_errors)
    errors.extend(error for error in pipeline_errors if error.field not in skip)

    schedule, zone = _schedule(pipeline, min_schedule_interval_minutes, pipeline_errors, errors)

    request = {key: value for key, value in known.items() if key in request_members}
    request.setdefault("type", "SQL")
    probe = RenderContext(PROBE_TIME, pipeline.name or "spec", PROBE_TRIGGER, zone_of(zone))
    checked_render(request, probe, errors, skip=skip)

    if errors:
        raise SpecInvalid(tidy(errors), source=source)
    try:
        return Spec.model_validate(
            {
                **request,
                "source": source,
                "name": pipeline.name,
                "maxRuntimeMinutes": pipeline.max_runtime_minutes,
                "maxAttempts": pipeline.max_attempts,
                "notify": pipeline.notify,
                "schedule": schedule,
                "timezone": zone,
            }
        )
    except ValidationError as exc:  # the typed shapes lag the botocore model: say which member
        raise SpecInvalid(tidy(field_errors(exc)), source=source) from None


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
        errors.extend(field_errors(exc))
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
            flexible_window_minutes=options.flexible_window_minutes,
            run_on_upload=options.run_on_upload,
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
