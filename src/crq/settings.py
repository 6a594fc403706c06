"""The functions' configuration: one model, validated once per cold start.

Every environment variable the template gives the functions (docs/design.md) is a field here, and
`Settings.from_env()` is the only place crq reads `os.environ`. A missing or malformed variable
fails the cold start with a message naming it, instead of failing later inside some event.
pydantic-settings is deliberately not used: it is not in the functions' requirements.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crq.errors import ConfigError

# Clean Rooms allows at most 5 SUBMITTED or STARTED queries per membership today. A higher cap is
# accepted (the template allows up to 100, should the quota grow): Clean Rooms' own refusal keeps
# the run queued either way.
CLEAN_ROOMS_QUERY_CAP = 5
MAX_QUERY_CAP = 100

NonEmpty = Annotated[str, Field(min_length=1)]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table_name: NonEmpty = Field(json_schema_extra={"env": "CRQ_TABLE_NAME"})
    topic_arn: NonEmpty = Field(json_schema_extra={"env": "CRQ_TOPIC_ARN"})
    specs_bucket: NonEmpty = Field(json_schema_extra={"env": "CRQ_SPECS_BUCKET"})
    specs_prefix: str = Field("specs/", json_schema_extra={"env": "CRQ_SPECS_PREFIX"})
    default_max_runtime_minutes: int = Field(
        60, ge=1, le=7 * 24 * 60, json_schema_extra={"env": "CRQ_DEFAULT_MAX_RUNTIME_MINUTES"}
    )
    run_retention_days: int = Field(
        90, ge=1, le=3650, json_schema_extra={"env": "CRQ_RUN_RETENTION_DAYS"}
    )
    membership_query_cap: int = Field(
        CLEAN_ROOMS_QUERY_CAP,
        ge=1,
        le=MAX_QUERY_CAP,
        json_schema_extra={"env": "CRQ_MEMBERSHIP_QUERY_CAP"},
    )
    # Spec-declared schedules (docs/spec.md, "Schedules"). The group, role, target and DLQ are
    # the start function's only (template.yaml): empty elsewhere, and a scheduled spec uploaded
    # without them fails the invocation by name (crq.schedule_sync).
    min_schedule_interval_minutes: int = Field(
        60, ge=0, le=527_040, json_schema_extra={"env": "CRQ_MIN_SCHEDULE_INTERVAL_MINUTES"}
    )
    schedule_group: str = Field("", json_schema_extra={"env": "CRQ_SCHEDULE_GROUP"})
    scheduler_role_arn: str = Field("", json_schema_extra={"env": "CRQ_SCHEDULER_ROLE_ARN"})
    schedule_target_arn: str = Field("", json_schema_extra={"env": "CRQ_SCHEDULE_TARGET_ARN"})
    schedule_dead_letter_arn: str = Field(
        "", json_schema_extra={"env": "CRQ_SCHEDULE_DEAD_LETTER_ARN"}
    )
    # ---- preflight and the cost guard (docs/preflight.md) ----
    # The stack's MembershipIds, ResultBucketNames and AnalysisTemplateArns parameters.
    membership_ids: tuple[str, ...] = Field((), json_schema_extra={"env": "CRQ_MEMBERSHIP_IDS"})
    result_bucket_names: tuple[str, ...] = Field(
        (), json_schema_extra={"env": "CRQ_RESULT_BUCKET_NAMES"}
    )
    analysis_template_arns: tuple[str, ...] = Field(
        (), json_schema_extra={"env": "CRQ_ANALYSIS_TEMPLATE_ARNS"}
    )
    # The most one query may ask for (empty / 0: no limit), and CRPU hours a day (0: none).
    max_worker_type: Literal["CR.1X", "CR.4X", "CR.8X"] | None = Field(
        None, json_schema_extra={"env": "CRQ_MAX_WORKER_TYPE"}
    )
    max_worker_count: int = Field(
        0, ge=0, le=1024, json_schema_extra={"env": "CRQ_MAX_WORKER_COUNT"}
    )
    daily_crpu_budget: float = Field(0, ge=0, json_schema_extra={"env": "CRQ_DAILY_CRPU_BUDGET"})
    service_name: NonEmpty = Field(json_schema_extra={"env": "POWERTOOLS_SERVICE_NAME"})
    metrics_namespace: NonEmpty = Field(json_schema_extra={"env": "POWERTOOLS_METRICS_NAMESPACE"})
    log_level: str = Field("INFO", json_schema_extra={"env": "POWERTOOLS_LOG_LEVEL"})

    # Tuning with safe defaults; not environment variables (docs/reliability.md explains them).
    # A STARTING run younger than this may still become visible in ListProtectedQueries; it must
    # exceed the function timeout, so a start call cannot still be in flight when it expires.
    starting_grace: timedelta = timedelta(seconds=120)
    # How long a claimed, unpublished notification stays claimed before another track retries it.
    notify_lease: timedelta = timedelta(minutes=2)
    # How long to wait before retrying a start refused with IAM_SYNCHRONIZATION_DELAY, and how
    # many times before it is reported as START_FAILED.
    iam_retry_after: timedelta = timedelta(seconds=30)
    iam_max_deferrals: int = 20
    # Throttled starts wait at least this long before the tracker tries again.
    throttle_retry_after: timedelta = timedelta(seconds=5)
    # A start whose call failed without creating a query (5xx, timeout, crash) is tried again
    # after each grace; after this many such starts the run ends START_FAILED instead of
    # trying forever (about max_unconfirmed_starts x starting_grace of trying).
    max_unconfirmed_starts: int = 5
    # A track pass works on memberships, and on the runs whose queries ended, this many at a time
    # (each unit is mostly waiting on AWS calls).
    track_workers: int = 16
    # Of the track function's remaining time, this much is kept for the work under way when the
    # pass stops taking new work (the rest waits for the next tick).
    track_time_reserve: timedelta = timedelta(seconds=15)

    @field_validator(
        "membership_ids", "result_bucket_names", "analysis_template_arns", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # CloudFormation joins a CommaDelimitedList parameter into one variable.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("specs_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        if value and not value.endswith("/"):
            raise ValueError("must end with '/'")
        return value

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> environment variable, for every field read from the environment."""
        names: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and isinstance(extra.get("env"), str):
                names[name] = str(extra["env"])
        return names

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        names = cls.env_names()
        values = {field: env[var] for field, var in names.items() if env.get(var, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                var = names.get(field, field)
                reason = "is not set" if error["type"] == "missing" else error["msg"]
                problems.append(f"{var} {reason}")
            raise ConfigError("crq cannot start: " + "; ".join(problems)) from exc
