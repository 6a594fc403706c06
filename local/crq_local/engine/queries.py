"""A protected query as the engine keeps it: its record, its statuses and its API shapes."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .execution import Execution
from .faults import QueryFaults
from .params import Bound
from .world import Membership

ACTIVE = frozenset({"SUBMITTED", "STARTED"})  # what the concurrency quota counts
ENDED = frozenset({"SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT"})


@dataclass(frozen=True)
class Received:
    """A StartProtectedQuery request the engine accepted (a query was created for it)."""

    query_id: str
    membership_id: str
    request: dict[str, Any]
    time: datetime


@dataclass(eq=False)
class Query:
    id: str
    seq: int
    membership: Membership
    request: dict[str, Any]
    bound: Bound
    faults: QueryFaults
    receivers: list[str]
    create_time: datetime
    status: str = "SUBMITTED"
    created_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    statistics: dict[str, Any] | None = None
    cancelled: bool = False
    released: bool = False
    forgotten: bool = False
    wake: threading.Event = field(default_factory=threading.Event)
    execution: Execution = field(default_factory=Execution)


def shape(q: Query) -> dict[str, Any]:
    """The API's ProtectedQuery (read under the runner's lock)."""
    out: dict[str, Any] = {
        "id": q.id,
        "membershipId": q.membership.id,
        "membershipArn": q.membership.arn,
        "createTime": q.create_time,
        "sqlParameters": q.request["sqlParameters"],
        "status": q.status,
    }
    for key in ("resultConfiguration", "computeConfiguration"):
        if key in q.request:
            out[key] = q.request[key]
    for key, value in (
        ("statistics", q.statistics),
        ("result", q.result),
        ("error", q.error),
    ):
        if value is not None:
            out[key] = value
    return copy.deepcopy(out)


def summary(q: Query) -> dict[str, Any]:
    """The API's ProtectedQuerySummary."""
    return {
        "id": q.id,
        "membershipId": q.membership.id,
        "membershipArn": q.membership.arn,
        "createTime": q.create_time,
        "status": q.status,
        "receiverConfigurations": [
            {
                "analysisType": "DIRECT_ANALYSIS",
                "configurationDetails": {
                    "directAnalysisConfigurationDetails": {
                        "receiverAccountIds": sorted(set(q.receivers))
                    }
                },
            }
        ],
    }


def query_error(code: str, message: str, retryable: bool) -> dict[str, Any]:
    """A failed query's `error`. `retry` is in the current API (RetryInfo); older botocore
    models drop it when parsing."""
    return {"code": code, "message": message, "retry": {"retryable": retryable}}
