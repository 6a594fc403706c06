"""What the use cases need from the outside world, as protocols, and the bundle they receive.

The real implementations are in `crq.adapters` (the only code importing boto3); tests pass fakes
or the real adapters under moto. Models here are Clean Rooms' data as the use cases see it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from crq.ledger import Ledger, ResultObject
from crq.metrics import RunMetrics
from crq.preflight import CollaborationReader
from crq.settings import Settings


class QueryStatus(StrEnum):
    """ProtectedQueryStatus values (botocore cleanrooms 2022-02-17). A query's `status` stays
    the string Clean Rooms sent (a value added later must not fail a read); compare it with
    these."""

    SUBMITTED = "SUBMITTED"
    STARTED = "STARTED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    SUCCESS = "SUCCESS"
    TIMED_OUT = "TIMED_OUT"


TERMINAL_STATUSES = frozenset(
    {QueryStatus.SUCCESS, QueryStatus.FAILED, QueryStatus.CANCELLED, QueryStatus.TIMED_OUT}
)
# Statuses that hold one of the membership's concurrent-query slots. CANCELLING is counted too:
# until it is CANCELLED the query may still occupy its slot, and guessing low risks a refusal.
ACTIVE_STATUSES = frozenset({QueryStatus.SUBMITTED, QueryStatus.STARTED, QueryStatus.CANCELLING})


class QuerySummary(BaseModel):
    """A ProtectedQuerySummary from ListProtectedQueries."""

    model_config = ConfigDict(frozen=True)

    id: str
    membership_id: str
    membership_arn: str
    create_time: datetime
    status: str

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ProtectedQuery(QuerySummary):
    """A ProtectedQuery from GetProtectedQuery or StartProtectedQuery.

    `sql_parameters` holds parameter values, which are sensitive: it is only ever used to compute
    a request fingerprint, never stored or logged.
    """

    sql_parameters: dict[str, Any] | None = None
    result_configuration: dict[str, Any] | None = None
    statistics: dict[str, Any] | None = None
    result_output: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    # `error.retry.retryable` in newer API versions; None when the model does not return it.
    error_retryable: bool | None = None
    differential_privacy: dict[str, Any] | None = None


class QueryGateway(Protocol):
    def start_protected_query(self, request: Mapping[str, Any]) -> ProtectedQuery:
        """StartProtectedQuery, sent once (never retried by the SDK: it has no client token).
        Raises StartDeferred, StartRefused, or the SDK's error when the outcome is unknown."""
        ...

    def list_queries(self, membership_id: str, not_before: datetime | None) -> list[QuerySummary]:
        """The membership's queries, newest first, paging until past `not_before` (one page
        when it is None)."""
        ...

    def get_query(self, membership_id: str, query_id: str) -> ProtectedQuery:
        """GetProtectedQuery; raises QueryNotFound."""
        ...

    def cancel_query(self, membership_id: str, query_id: str) -> None:
        """UpdateProtectedQuery(targetStatus=CANCELLED); raises QueryAlreadyEnded."""
        ...


@dataclass(frozen=True)
class SpecObject:
    data: bytes
    size: int
    version_id: str | None
    etag: str | None


class SpecStore(Protocol):
    def get_spec(self, bucket: str, key: str, version_id: str | None) -> SpecObject:
        """The object (that version, or the current one). Raises SpecUnreadable, also for an
        object over the spec size limit (read no further than the limit)."""
        ...


class ResultLister(Protocol):
    def list_objects(self, location: str, limit: int) -> tuple[list[ResultObject], bool]:
        """Objects under an `s3://bucket/prefix` location, at most `limit`, and whether there
        were more."""
        ...


class Publisher(Protocol):
    def publish(
        self, subject: str, message: str, attributes: Mapping[str, str], text: str | None = None
    ) -> str:
        """Publish to the notifications topic: the JSON `message`, and `text` for e-mail
        subscribers. Returns the message id. Raises PublishFailed."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Collaborators:
    """The collaborators of the start and track use cases, built once per cold start."""

    settings: Settings
    ledger: Ledger
    queries: QueryGateway
    specs: SpecStore
    results: ResultLister
    publisher: Publisher
    metrics: RunMetrics
    clock: Callable[[], datetime] = field(default=utc_now)
    # The Clean Rooms reads of preflight (crq.preflight), cached per container. None: no
    # preflight (unit tests of other concerns); build_collaborators always wires it.
    collaboration: CollaborationReader | None = None
