r"""The run ledger: one item per run (per trigger), and the states a run goes through.

```
QUEUED --intent--> STARTING --StartProtectedQuery ok--> RUNNING --query ended--> ENDED
  ^  ^                 |  \--quota/throttle/IAM delay--> QUEUED (attempt kept)
  |  |                 \--call outcome unknown--> reconcile: RUNNING, or QUEUED after the grace
  |  \----- FAILED with a retryable error, attempts left (attempt + 1) -----/
  \-- created QUEUED, or STARTING when a slot is free; a spec that fails validation is
      created ENDED (SPEC_REJECTED)
ENDED: notifyState CLAIMED (ended and claimed in one conditional write, lease) --published--> SENT
       (PENDING: stored by earlier versions; claimed by its own conditional write)
```

Every write is optimistic: a run carries a `revision`, and `Ledger.save` succeeds only if the
stored revision is still the one the caller read (else `StaleRun`). That one rule gives every
transition its guarantee: of two invocations that read a QUEUED run, one moves it to STARTING;
of two trackers that see a PENDING notification, one claims it.

Sensitive values (query parameter values) are never stored: the run keeps the spec's source
object version and trigger time, and re-renders from them when it is (re)started.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class RunState(StrEnum):
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    ENDED = "ENDED"


class NotifyState(StrEnum):
    PENDING = "PENDING"
    CLAIMED = "CLAIMED"
    SENT = "SENT"


class TriggerType(StrEnum):
    S3 = "s3"
    SCHEDULE = "schedule"


class RunEvent(StrEnum):
    """How a run ended; the notification's `event`."""

    QUERY_SUCCEEDED = "QUERY_SUCCEEDED"
    QUERY_FAILED = "QUERY_FAILED"
    QUERY_CANCELLED = "QUERY_CANCELLED"
    QUERY_TIMED_OUT = "QUERY_TIMED_OUT"
    SPEC_REJECTED = "SPEC_REJECTED"
    START_FAILED = "START_FAILED"


class _Model(BaseModel):
    # camelCase in the table and in notifications, snake_case in Python.
    # Validators are built on first use, not at import (cold start is a budget).
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
    )


class ErrorInfo(_Model):
    code: str  # a stable machine code (Clean Rooms' exception or query error code, or crq's)
    message: str
    retryable: bool = False
    reason: str | None = None  # Clean Rooms' reason (e.g. FIELD_VALIDATION_FAILED), if given


class AttemptCost(_Model):
    """One attempt's query and what Clean Rooms billed for it (CRPU hours)."""

    query_id: str
    status: str
    billed_units: float | None = None


class FieldProblem(_Model):
    field: str
    message: str


class ResultObject(_Model):
    uri: str
    size: int


class Outcome(_Model):
    """Everything the notification of an ended run says, fixed when the run ends.

    Stored with the run so a re-published notification is identical to the first one.
    `statistics`, `result_output` and `differential_privacy` are Clean Rooms' own shapes, as
    GetProtectedQuery returned them.
    """

    event: RunEvent
    ended_at: datetime
    query_status: str | None = None
    error: ErrorInfo | None = None
    statistics: dict[str, Any] | None = None
    result_output: dict[str, Any] | None = None
    objects: list[ResultObject] | None = None
    objects_truncated: bool | None = None
    objects_not_listed: bool | None = None  # an S3 output whose files could not be listed
    differential_privacy: dict[str, Any] | None = None
    errors: list[FieldProblem] | None = None
    reason: str | None = None

    @property
    def duration_ms(self) -> int | None:
        value = (self.statistics or {}).get("totalDurationInMillis")
        return int(value) if isinstance(value, int | float) else None

    @property
    def crpu_units(self) -> float | None:
        billed = (self.statistics or {}).get("billedResourceUtilization") or {}
        value = billed.get("units") if isinstance(billed, dict) else None
        return float(value) if isinstance(value, int | float) else None


class Run(_Model):
    run_id: str
    revision: int = 0
    state: RunState
    attempt: int = 1
    max_attempts: int = 2
    created_at: datetime
    updated_at: datetime

    # The trigger and the spec object version it names.
    trigger_type: TriggerType
    trigger_time: datetime
    trigger_id: str | None = None
    spec_bucket: str
    spec_key: str
    spec_version_id: str | None = None
    spec_etag: str | None = None
    spec_name: str
    membership_id: str | None = None
    max_runtime_minutes: int | None = None
    notify_attributes: dict[str, str] = Field(default_factory=dict)

    # Start intent and bookkeeping.
    starting_at: datetime | None = None
    request: dict[str, Any] | None = None  # rendered request with parameter values redacted
    request_fingerprint: str | None = None
    fingerprint_salt: str | None = None
    retry_after: datetime | None = None
    deferrals: int = 0
    unconfirmed_starts: int = 0  # start calls that created no query (reconciled to QUEUED)
    past_query_ids: list[str] = Field(default_factory=list)
    attempts: list[AttemptCost] = Field(default_factory=list)  # every ended attempt's cost

    # The query of the current attempt.
    query_id: str | None = None
    membership_arn: str | None = None
    query_create_time: datetime | None = None
    query_status: str | None = None
    cancel_requested_at: datetime | None = None
    cancel_reason: str | None = None

    # The end and its notification.
    outcome: Outcome | None = None
    notify_state: NotifyState | None = None
    notify_lease_until: datetime | None = None
    notified_at: datetime | None = None
    expires_at: int | None = None  # DynamoDB TTL, epoch seconds

    @property
    def spec_source(self) -> str:
        return f"s3://{self.spec_bucket}/{self.spec_key}"

    @property
    def in_flight_since(self) -> str:
        """The InFlight index's sort key: oldest first, so queued runs start in arrival order."""
        return in_flight_since(self.created_at, self.run_id)

    @property
    def in_flight(self) -> bool:
        """Whether the tracker still has work on this run (the InFlight index holds it)."""
        return self.state is not RunState.ENDED or self.notify_state is not NotifyState.SENT

    @property
    def active_membership(self) -> str | None:
        """The membership whose slots or queue this run holds (the per-membership index key):
        set while QUEUED, STARTING or RUNNING, absent once ENDED."""
        if self.state is RunState.ENDED:
            return None
        return self.membership_id

    @property
    def notification_id(self) -> str | None:
        if self.outcome is None:
            return None
        return f"{self.run_id}:{self.attempt}:{self.outcome.event}"

    def evolve(self, now: datetime, **changes: Any) -> Run:
        """A copy with `changes` applied and `updated_at` set; `revision` stays the one read."""
        return self.model_copy(update={**changes, "updated_at": now})

    def needs_notification(self, now: datetime) -> bool:
        if self.state is not RunState.ENDED or self.notify_state is NotifyState.SENT:
            return False
        if self.notify_state is NotifyState.CLAIMED:
            return self.notify_lease_until is None or self.notify_lease_until <= now
        return True


class ActiveRun(_Model):
    """A row of the per-membership in-flight index: just what the start path needs to decide
    whether a new run waits (older queued runs, slots held)."""

    run_id: str
    state: RunState
    in_flight_since: str


def in_flight_since(created_at: datetime, run_id: str) -> str:
    # A fixed-width UTC timestamp, so the index's string order is time order.
    return f"{created_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}#{run_id}"


def _digest(*parts: str) -> str:
    # NUL separates the parts so ("ab", "c") and ("a", "bc") differ.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def upload_run_id(bucket: str, key: str, version_or_etag: str) -> str:
    return "s3:" + _digest(bucket, key, version_or_etag)


def schedule_run_id(spec_key: str, scheduled_time: datetime) -> str:
    return "schedule:" + _digest(spec_key, scheduled_time.astimezone(UTC).isoformat())


def budget_day(moment: datetime) -> str:
    """The UTC day a billed unit counts against (the daily CRPU budget), as YYYY-MM-DD."""
    return moment.astimezone(UTC).date().isoformat()


def expiry(now: datetime, retention_days: int) -> int:
    return int((now + timedelta(days=retention_days)).timestamp())


class Ledger(Protocol):
    """Where runs live. `crq.adapters.dynamodb.DynamoLedger` is the real one."""

    def create(
        self,
        run: Run,
        *,
        claim_name: str | None = None,
        no_schedule_record: str | None = None,
    ) -> Run | None:
        """Store a new run (revision 1) and return it as stored; None (and nothing written) if
        a run with its id exists.

        `claim_name`: also claim that spec name for `run.spec_key` (as `claim_spec_name`), in
        the same write: if another key holds it, nothing is written and `NameClaimed` (with the
        holder) is raised. One round trip where a claim and a create were two.
        `no_schedule_record`: only if that spec-state record (crq.schedule_state) is absent, or
        applied without a schedule; else nothing is written and `ScheduleRecordFound` is raised
        (the read the schedule sync of an unscheduled upload would otherwise make first)."""
        ...

    def get(self, run_id: str) -> Run | None: ...

    def get_many(self, run_ids: list[str]) -> list[Run]:
        """The runs of `run_ids` that exist, in that order, read consistently (one round trip
        per hundred ids): the full runs behind rows of the per-membership index."""
        ...

    def save(self, run: Run) -> Run:
        """Replace the stored run if its revision is still `run.revision`, else raise
        `StaleRun`. Returns the stored run (revision + 1)."""
        ...

    def in_flight(self) -> list[Run]:
        """Every run the tracker still has work on, oldest first (the InFlight index)."""
        ...

    def find_by_query(self, query_id: str) -> Run | None:
        """The run whose current query is `query_id` (the ByQuery index)."""
        ...

    def active_in_membership(self, membership_id: str) -> list[ActiveRun]:
        """The membership's QUEUED, STARTING and RUNNING runs, oldest first (the sparse
        per-membership index, narrow rows): its cost does not grow with other memberships."""
        ...

    # --- spec name claims (crq.spec.names; issue 13) ---
    def claim_spec_name(self, name: str, spec_key: str, now: datetime) -> str | None:
        """Claim `name` for `spec_key` unless another key holds it: None when claimed (or
        already held by `spec_key`), else the key holding it."""
        ...

    def pass_spec_name(self, name: str, owner: str, spec_key: str, now: datetime) -> None:
        """Give `name` to `spec_key` if `owner` still holds it; otherwise change nothing."""
        ...

    def add_billed_units(self, day: str, query_id: str, units: float) -> None:
        """Count a query's billed CRPU hours against `day` (YYYY-MM-DD, UTC), once per query
        id however often it is called."""
        ...

    def billed_units(self, day: str) -> float:
        """CRPU hours counted against `day` so far (0 when nothing was)."""
        ...
