"""In-memory collaborators with a simulated latency per call, for the track-pass benchmark.

Each call sleeps `latency` seconds (as a network round trip would: the GIL is released) and is
counted; state is kept behind a lock, with the real adapters' contracts (conditional writes by
revision, StaleRun).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from crq.errors import QueryNotFound, StaleRun
from crq.ledger import ActiveRun, ResultObject, Run, RunState, TriggerType
from crq.ports import ProtectedQuery, QuerySummary, SpecObject

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


class Calls:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1
        time.sleep(self.latency)

    def total(self) -> int:
        return sum(self.counts.values())


class SlowLedger:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.rows: dict[str, Run] = {}
        self._lock = threading.Lock()

    def create(
        self, run: Run, *, claim_name: str | None = None, no_schedule_record: str | None = None
    ) -> Run | None:
        both = claim_name or no_schedule_record
        self.calls("dynamodb.TransactWriteItems" if both else "dynamodb.PutItem")
        with self._lock:
            if run.run_id in self.rows:
                return None
            stored = run.model_copy(update={"revision": 1})
            self.rows[run.run_id] = stored
            return stored

    def get(self, run_id: str) -> Run | None:
        self.calls("dynamodb.GetItem")
        with self._lock:
            return self.rows.get(run_id)

    def save(self, run: Run) -> Run:
        self.calls("dynamodb.PutItem")
        with self._lock:
            current = self.rows.get(run.run_id)
            if current is None or current.revision != run.revision:
                raise StaleRun(run.run_id, run.revision)
            stored = run.model_copy(update={"revision": run.revision + 1})
            self.rows[run.run_id] = stored
            return stored

    def in_flight(self) -> list[Run]:
        with self._lock:
            runs = sorted((r for r in self.rows.values() if r.in_flight), key=_since)
        # One Query page per 1 MB of items (about 400 runs).
        for _ in range(max(1, -(-len(runs) // 400))):
            self.calls("dynamodb.Query")
        return runs

    def find_by_query(self, query_id: str) -> Run | None:
        self.calls("dynamodb.Query")
        with self._lock:
            return next((r for r in self.rows.values() if r.query_id == query_id), None)

    def active_in_membership(self, membership_id: str) -> list[ActiveRun]:
        self.calls("dynamodb.Query")
        with self._lock:
            return [
                ActiveRun(run_id=r.run_id, state=r.state, in_flight_since=r.in_flight_since)
                for r in sorted(self.rows.values(), key=_since)
                if r.active_membership == membership_id
            ]


def _since(run: Run) -> str:
    return run.in_flight_since


class EndedQueries:
    """Clean Rooms where every query given has ended SUCCESS."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.queries: dict[str, ProtectedQuery] = {}

    def add(self, membership_id: str) -> ProtectedQuery:
        qid = str(uuid.uuid4())
        query = ProtectedQuery(
            id=qid,
            membership_id=membership_id,
            membership_arn=f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{membership_id}",
            create_time=T0,
            status="SUCCESS",
            result_output={"s3": {"location": f"s3://results/{qid}/"}},
            statistics={"totalDurationInMillis": 60_000},
        )
        self.queries[qid] = query
        return query

    def start_protected_query(self, request: Mapping[str, Any]) -> ProtectedQuery:
        raise AssertionError("nothing is queued in this benchmark")

    def list_queries(self, membership_id: str, not_before: datetime | None) -> list[QuerySummary]:
        self.calls("cleanrooms.ListProtectedQueries")
        return [q for q in self.queries.values() if q.membership_id == membership_id]

    def get_query(self, membership_id: str, query_id: str) -> ProtectedQuery:
        self.calls("cleanrooms.GetProtectedQuery")
        query = self.queries.get(query_id)
        if query is None:
            raise QueryNotFound(membership_id, query_id)
        return query

    def cancel_query(self, membership_id: str, query_id: str) -> None:
        raise AssertionError("nothing runs too long in this benchmark")


class SlowResults:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def list_objects(self, location: str, limit: int) -> tuple[list[ResultObject], bool]:
        self.calls("s3.ListObjectsV2")
        return [ResultObject(uri=location + "result/result.csv", size=42)], False


class SlowPublisher:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def publish(
        self, subject: str, message: str, attributes: Mapping[str, str], text: str | None = None
    ) -> str:
        self.calls("sns.Publish")
        return str(uuid.uuid4())


class NoSpecs:
    def get_spec(self, bucket: str, key: str, version_id: str | None) -> SpecObject:
        raise AssertionError("nothing is queued in this benchmark")


class NoMetrics:
    def query_started(self) -> None: ...
    def start_queued(self) -> None: ...
    def query_retried(self) -> None: ...
    def run_ended(self, outcome: Any) -> None: ...
    def notification_published(self) -> None: ...


def running_run(run_id: str, query: ProtectedQuery) -> Run:
    return Run(
        run_id=run_id,
        revision=1,
        state=RunState.RUNNING,
        created_at=T0,
        updated_at=T0,
        trigger_type=TriggerType.S3,
        trigger_time=T0,
        spec_bucket="specs",
        spec_key=f"specs/{run_id}.yaml",
        spec_name=run_id,
        membership_id=query.membership_id,
        query_id=query.id,
        query_create_time=T0,
        query_status="STARTED",
        max_runtime_minutes=24 * 60,
    )


def later(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)
