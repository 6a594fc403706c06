"""In-memory collaborators for the pipeline's unit tests.

They keep the contracts of the real adapters (conditional writes by revision, newest-first
listing, errors as domain exceptions) and record what was asked of them, so tests assert on what
a user would see: the ledger row, the queries started, the messages published.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crq.errors import (
    NameClaimed,
    PublishFailed,
    QueryAlreadyEnded,
    QueryNotFound,
    ResultsUnavailable,
    ScheduleRecordFound,
    SpecUnreadable,
    StaleRun,
    StartDeferred,
    StartRefused,
)
from crq.ledger import ActiveRun, Outcome, ResultObject, Run, RunState, TriggerType
from crq.ports import TERMINAL_STATUSES, Collaborators, ProtectedQuery, QuerySummary, SpecObject
from crq.schedule_state import ManagedSchedule, SpecState, StateClaimRefused
from crq.settings import Settings
from crq.spec.safe_load import MAX_SPEC_BYTES, too_large
from crq.starter import start_run
from crq.triggers import SpecUploaded

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
OTHER_MEMBERSHIP = "0b7d5e21-93c4-4f0a-8e6d-5c1a2f9b4e38"
BUCKET = "crq-specs"
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


class FakeLedger:
    """The runs table in memory. `states`: the spec-state records that share the table (the
    schedule use case's FakeStates), which a create may be asked to check."""

    def __init__(self, states: FakeStates | None = None) -> None:
        self.states = states or FakeStates()
        self.rows: dict[str, Run] = {}
        self.writes = 0
        self.names: dict[str, str] = {}  # spec name claims: name -> spec key
        self.budget: dict[str, dict[str, float]] = {}  # day -> query id -> units

    def create(
        self,
        run: Run,
        *,
        claim_name: str | None = None,
        no_schedule_record: str | None = None,
    ) -> Run | None:
        if run.run_id in self.rows:
            return None
        if no_schedule_record is not None:  # the record checked in the same write
            record = self.states.records.get(no_schedule_record)
            if record is not None and (record.desired is not None or not record.applied):
                raise ScheduleRecordFound(no_schedule_record)
        if claim_name is not None:  # the name claim in the same write: both or neither
            owner = self.names.get(claim_name, run.spec_key)
            if owner != run.spec_key:
                raise NameClaimed(claim_name, owner)
            self.names[claim_name] = run.spec_key
        stored = run.model_copy(update={"revision": 1})
        self.rows[run.run_id] = stored
        self.writes += 1
        return stored

    def get(self, run_id: str) -> Run | None:
        return self.rows.get(run_id)

    def get_many(self, run_ids: list[str]) -> list[Run]:
        return [self.rows[run_id] for run_id in run_ids if run_id in self.rows]

    def save(self, run: Run) -> Run:
        current = self.rows.get(run.run_id)
        if current is None or current.revision != run.revision:
            raise StaleRun(run.run_id, run.revision)
        stored = run.model_copy(update={"revision": run.revision + 1})
        self.rows[run.run_id] = stored
        self.writes += 1
        return stored

    def in_flight(self) -> list[Run]:
        return sorted(
            (r for r in self.rows.values() if r.in_flight), key=lambda r: r.in_flight_since
        )

    def find_by_query(self, query_id: str) -> Run | None:
        return next((r for r in self.rows.values() if r.query_id == query_id), None)

    def active_in_membership(self, membership_id: str) -> list[ActiveRun]:
        return [
            ActiveRun(run_id=r.run_id, state=r.state, in_flight_since=r.in_flight_since)
            for r in sorted(self.rows.values(), key=lambda r: r.in_flight_since)
            if r.active_membership == membership_id
        ]

    def claim_spec_name(self, name: str, spec_key: str, now: datetime) -> str | None:
        owner = self.names.setdefault(name, spec_key)
        return None if owner == spec_key else owner

    def pass_spec_name(self, name: str, owner: str, spec_key: str, now: datetime) -> None:
        if self.names.get(name) == owner:
            self.names[name] = spec_key

    # the daily CRPU budget (crq.budget)
    def add_billed_units(self, day: str, query_id: str, units: float) -> None:
        counted = self.budget.setdefault(day, {})
        counted.setdefault(query_id, units)

    def billed_units(self, day: str) -> float:
        # DynamoDB's ADD sums the decimal numbers it was sent (repr of each float), exactly.
        return float(sum((Decimal(repr(u)) for u in self.budget.get(day, {}).values()), Decimal()))

    def only(self) -> Run:
        assert len(self.rows) == 1, list(self.rows)
        return next(iter(self.rows.values()))


@dataclass
class FakeQuery:
    id: str
    membership_id: str
    create_time: datetime
    status: str
    request: dict[str, Any]
    error: dict[str, Any] | None = None
    result_output: dict[str, Any] | None = None
    statistics: dict[str, Any] | None = None

    def summary(self) -> QuerySummary:
        return QuerySummary(
            id=self.id,
            membership_id=self.membership_id,
            membership_arn=membership_arn(self.membership_id),
            create_time=self.create_time,
            status=self.status,
        )

    def full(self) -> ProtectedQuery:
        return ProtectedQuery(
            **self.summary().model_dump(),
            sql_parameters=self.request.get("sqlParameters"),
            result_configuration=self.request.get("resultConfiguration"),
            statistics=self.statistics,
            result_output=self.result_output,
            error_code=(self.error or {}).get("code"),
            error_message=(self.error or {}).get("message"),
            error_retryable=(self.error or {}).get("retryable"),
        )


def result_location(query: FakeQuery) -> str:
    """Where Clean Rooms writes a query's results: `<keyPrefix>/<query id>/` in the requested
    bucket (s3://results/<id>/ when the request names none)."""
    output = (query.request.get("resultConfiguration") or {}).get("outputConfiguration") or {}
    s3 = output.get("s3")
    if not s3:
        return f"s3://results/{query.id}/"
    prefix = str(s3.get("keyPrefix", "")).strip("/")
    return f"s3://{s3['bucket']}/{prefix + '/' if prefix else ''}{query.id}/"


def membership_arn(membership_id: str) -> str:
    return f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{membership_id}"


class FakeCleanRooms:
    """A tiny Clean Rooms: queries by membership, a cap, scripted start failures, a call log.

    tests/contract holds it to the real gateway's behaviour (against the local engine)."""

    def __init__(self, clock: Clock, cap: int = 5, results: FakeResults | None = None) -> None:
        self.clock = clock
        self.cap = cap
        self.results = results  # where a succeeded query's result file is written
        # The memberships crq's account is a member of; a start in another one is refused.
        self.memberships = {MEMBERSHIP, OTHER_MEMBERSHIP}
        self.queries: dict[str, FakeQuery] = {}
        self.calls: list[tuple[str, str]] = []
        # Raised by the next start_protected_query calls, in order (None: start normally).
        self.start_failures: list[Exception | None] = []
        # Called after a query is created and before start_protected_query returns (to simulate a crash).
        self.after_create: Callable[[FakeQuery], None] | None = None
        self.page_size = 100
        self.cancel_conflict = False

    def add(self, membership_id: str, status: str, created: datetime, **extra: Any) -> FakeQuery:
        query = FakeQuery(
            id=str(uuid.uuid4()),
            membership_id=membership_id,
            create_time=created,
            status=status,
            request=extra.pop("request", {}),
            **extra,
        )
        self.queries[query.id] = query
        return query

    def end(self, query_id: str, status: str = "SUCCESS", **extra: Any) -> None:
        query = self.queries[query_id]
        query.status = status
        for key, value in extra.items():
            setattr(query, key, value)
        if status == "SUCCESS" and query.result_output is None:
            query.result_output = {"s3": {"location": result_location(query)}}
            if self.results is not None:
                self.results.put(result_location(query) + "part-0.csv", 42)
            query.statistics = {
                "totalDurationInMillis": 61_000,
                "billedResourceUtilization": {"units": 0.5},
            }

    def active(self, membership_id: str) -> int:
        return sum(
            1
            for q in self.queries.values()
            if q.membership_id == membership_id
            and q.status in ("SUBMITTED", "STARTED", "CANCELLING")
        )

    def started(self) -> list[FakeQuery]:
        return sorted(self.queries.values(), key=lambda q: q.create_time)

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    # ---- QueryGateway ----
    def start_protected_query(self, request: Mapping[str, Any]) -> ProtectedQuery:
        membership_id = request["membershipIdentifier"]
        self.calls.append(("start", membership_id))
        if self.start_failures:
            failure = self.start_failures.pop(0)
            if failure is not None:
                raise failure
        if membership_id not in self.memberships:
            raise StartRefused("ResourceNotFoundException", f"Membership {membership_id} not found")
        if self.active(membership_id) >= self.cap:
            raise StartDeferred(StartDeferred.QUOTA, "at most 5 queries")
        query = self.add(membership_id, "SUBMITTED", self.clock(), request=dict(request))
        if self.after_create:
            self.after_create(query)
        return query.full()

    def list_queries(self, membership_id: str, not_before: datetime | None) -> list[QuerySummary]:
        ordered = sorted(
            (q for q in self.queries.values() if q.membership_id == membership_id),
            key=lambda q: q.create_time,
            reverse=True,
        )
        found: list[QuerySummary] = []
        for start in itertools.count(0, self.page_size):
            page = ordered[start : start + self.page_size]
            self.calls.append(("list", membership_id))
            found.extend(q.summary() for q in page)
            more = start + self.page_size < len(ordered)
            if not more or not_before is None or (page and page[-1].create_time < not_before):
                break
        return found

    def get_query(self, membership_id: str, query_id: str) -> ProtectedQuery:
        self.calls.append(("get", query_id))
        query = self.queries.get(query_id)
        if query is None or query.membership_id != membership_id:
            raise QueryNotFound(membership_id, query_id)
        return query.full()

    def cancel_query(self, membership_id: str, query_id: str) -> None:
        self.calls.append(("cancel", query_id))
        query = self.queries.get(query_id)
        if query is None or query.membership_id != membership_id:
            raise QueryNotFound(membership_id, query_id)
        if self.cancel_conflict or query.status in TERMINAL_STATUSES:
            raise QueryAlreadyEnded(query_id, "already ended")
        query.status = "CANCELLING"


@dataclass
class FakeStates:
    """Spec-state records in memory (crq.schedule_state), as DynamoSpecStates keeps them."""

    records: dict[str, SpecState] = field(default_factory=dict)

    def get(self, state_id: str) -> SpecState | None:
        return self.records.get(state_id)

    def claim(self, state: SpecState) -> None:
        held = self.records.get(state.state_id)
        if (
            held is None
            or held.sequencer < state.sequencer
            or (
                held.sequencer == state.sequencer
                and (not held.applied or held.version_id != state.version_id)
            )
        ):
            self.records[state.state_id] = state
            return
        raise StateClaimRefused(held)

    def mark_applied(self, state: SpecState) -> bool:
        held = self.records[state.state_id]
        if held.sequencer != state.sequencer:
            return False
        self.records[state.state_id] = held.model_copy(update={"applied": True})
        return True


@dataclass
class FakeScheduler:
    """The spec schedules' group in memory (EventBridge Scheduler)."""

    schedules: dict[str, ManagedSchedule] = field(default_factory=dict)
    calls: int = 0

    def put(self, schedule: ManagedSchedule) -> None:
        self.calls += 1
        self.schedules[schedule.name] = schedule

    def delete(self, group: str, name: str) -> None:
        self.calls += 1
        self.schedules.pop(name, None)

    def get(self, group: str, name: str) -> ManagedSchedule | None:
        return self.schedules.get(name)


class FakeSpecs:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
        self.reads = 0

    def put(self, key: str, data: bytes | str, bucket: str = BUCKET) -> str:
        versions = self.objects.setdefault((bucket, key), [])
        version_id = f"v{len(versions) + 1}"
        versions.append((version_id, data.encode() if isinstance(data, str) else data))
        return version_id

    def get_spec(self, bucket: str, key: str, version_id: str | None) -> SpecObject:
        self.reads += 1
        versions = self.objects.get((bucket, key))
        if not versions:
            raise SpecUnreadable(f"s3://{bucket}/{key}", "the spec object does not exist")
        for vid, data in reversed(versions):
            if version_id in (None, vid):
                if len(data) > MAX_SPEC_BYTES:  # SpecStore reads no further than the limit
                    raise SpecUnreadable(f"s3://{bucket}/{key}", too_large(len(data)))
                return SpecObject(data=data, size=len(data), version_id=vid, etag=f"etag-{vid}")
        raise SpecUnreadable(
            f"s3://{bucket}/{key}", "that version of the spec object does not exist"
        )


class FakeResults:
    """Result buckets in memory: the objects written to them (FakeCleanRooms writes a query's
    result file when it succeeds, as Clean Rooms does). tests/contract holds it to ResultLister's
    behaviour on S3."""

    def __init__(self) -> None:
        self.objects: dict[str, int] = {}  # s3://bucket/key -> size
        self.missing_buckets: set[str] = set()

    def put(self, uri: str, size: int) -> None:
        self.objects[uri] = size

    def list_objects(self, location: str, limit: int) -> tuple[list[ResultObject], bool]:
        bucket = location.removeprefix("s3://").partition("/")[0]
        if bucket in self.missing_buckets:
            raise ResultsUnavailable(location, "NoSuchBucket")
        found = [
            ResultObject(uri=uri, size=size)
            for uri, size in sorted(self.objects.items())
            if uri.startswith(location) and not uri.endswith("/")  # folder markers: not results
        ]
        return found[:limit], len(found) > limit


@dataclass
class Published:
    subject: str
    message: str
    attributes: dict[str, str]
    text: str | None = None


class FakePublisher:
    """The notifications topic in memory (tests/contract holds it to SnsPublisher's behaviour).

    `failures`: how many of the next publishes fail, as SNS being unreachable would."""

    def __init__(self) -> None:
        self.messages: list[Published] = []
        self.failures = 0

    def publish(
        self, subject: str, message: str, attributes: Mapping[str, str], text: str | None = None
    ) -> str:
        if self.failures:
            self.failures -= 1
            raise PublishFailed("SNS is down")
        self.messages.append(Published(subject, message, dict(attributes), text))
        return f"msg-{len(self.messages)}"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(m.message) for m in self.messages]

    def received(self) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
        """What a machine subscriber (SQS) got: subject, JSON body, attributes."""
        return [(m.subject, json.loads(m.message), m.attributes) for m in self.messages]


@dataclass
class RecordingMetrics:
    events: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def query_started(self) -> None:
        self.events.append("started")

    def start_queued(self) -> None:
        self.events.append("queued")

    def query_retried(self) -> None:
        self.events.append("retried")

    def run_ended(self, outcome: Outcome) -> None:
        self.events.append(f"ended:{outcome.event}")
        self.outcomes.append(outcome)

    def notification_published(self) -> None:
        self.events.append("published")


def queued_run(**changes: Any) -> Run:
    """A run just created by an upload of specs/x.yaml at T0; `changes` override any field."""
    base = Run(
        run_id="r",
        state=RunState.QUEUED,
        created_at=T0,
        updated_at=T0,
        trigger_type=TriggerType.S3,
        trigger_time=T0,
        spec_bucket="b",
        spec_key="specs/x.yaml",
        spec_name="x",
    )
    return base.model_copy(update=changes)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "table_name": "runs",
        "topic_arn": "arn:aws:sns:us-east-1:111111111111:crq",
        "specs_bucket": BUCKET,
        "service_name": "crq",
        "metrics_namespace": "crq",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class World:
    clock: Clock
    ledger: FakeLedger
    cleanrooms: FakeCleanRooms
    specs: FakeSpecs
    results: FakeResults
    publisher: FakePublisher
    metrics: RecordingMetrics
    deps: Collaborators


def world(**setting_overrides: Any) -> World:
    clock = Clock()
    results, publisher, metrics = FakeResults(), FakePublisher(), RecordingMetrics()
    ledger, cleanrooms, specs = FakeLedger(), FakeCleanRooms(clock, results=results), FakeSpecs()
    deps = Collaborators(
        settings=settings(**setting_overrides),
        ledger=ledger,
        queries=cleanrooms,
        specs=specs,
        results=results,
        publisher=publisher,
        metrics=metrics,
        clock=clock,
    )
    return World(clock, ledger, cleanrooms, specs, results, publisher, metrics, deps)


SQL_SPEC = """\
membershipIdentifier: {membership}
sqlParameters:
  queryString: "SELECT campaign_id, COUNT(*) AS n FROM impressions WHERE impression_date = DATE '{{{{ run_date - 1d }}}}' GROUP BY campaign_id"
resultConfiguration:
  outputConfiguration:
    s3:
      resultFormat: CSV
      bucket: crq-results
      keyPrefix: "{{{{ spec_name }}}}/{{{{ run_date | %Y/%m/%d }}}}/"
{extra}
"""

TEMPLATE_SPEC = """\
name: overlap
membershipIdentifier: {membership}
sqlParameters:
  analysisTemplateArn: arn:aws:cleanrooms:us-east-1:111111111111:membership/{membership}/analysistemplate/3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64
  parameters:
    start_date: "{{{{ run_date - 7d }}}}"
    end_date: "{{{{ run_date }}}}"
    secret_salt: "{secret}"
resultConfiguration:
  outputConfiguration:
    s3:
      resultFormat: CSV
      bucket: crq-results
      keyPrefix: "overlap/{{{{ run_date }}}}/"
{extra}
"""


def sql_spec(membership: str = MEMBERSHIP, extra: str = "") -> str:
    return SQL_SPEC.format(membership=membership, extra=extra)


def template_spec(
    secret: str = "s3cr3t-pepper", membership: str = MEMBERSHIP, extra: str = ""
) -> str:
    return TEMPLATE_SPEC.format(membership=membership, secret=secret, extra=extra)


# ---- triggers the tests send ------------------------------------------------------------------


def upload(
    w: World, key: str = "specs/daily.yaml", body: str | None = None, **kw: object
) -> SpecUploaded:
    version = w.specs.put(key, body if body is not None else sql_spec())
    fields = {
        "bucket": BUCKET,
        "key": key,
        "version_id": version,
        "etag": "etag",
        "size": 100,
        "time": w.clock(),
        "event_id": f"event-{key}-{version}",
    }
    fields.update(kw)
    return SpecUploaded(**fields)  # type: ignore[arg-type]


def start_spec(w: World, name: str, membership: str = MEMBERSHIP, extra: str = "") -> Run:
    key = f"specs/{name}.yaml"
    version = w.specs.put(key, sql_spec(membership=membership, extra=extra))
    start_run(SpecUploaded(BUCKET, key, version, "etag", 10, w.clock(), f"ev-{name}"), w.deps)
    return run_named(w, name)


def run_named(w: World, name: str) -> Run:
    return next(r for r in w.ledger.rows.values() if r.spec_name == name)
