"""The CloudWatch metrics crq emits (Powertools Metrics, namespace from POWERTOOLS_METRICS_NAMESPACE).

| metric | unit | when |
| --- | --- | --- |
| QueriesStarted | Count | StartProtectedQuery accepted a query |
| StartsQueued | Count | a start was deferred (slot cap, quota, throttling, IAM delay) |
| SpecsRejected | Count | a spec failed validation or could not be read |
| QueriesSucceeded | Count | a run ended QUERY_SUCCEEDED |
| QueriesFailed | Count | a run ended otherwise (failed, cancelled, timed out, start failed) |
| QueriesRetried | Count | a failed attempt was queued again |
| QueryDuration | Milliseconds | statistics.totalDurationInMillis of an ended query |
| CrpuUnits | None | statistics.billedResourceUtilization.units (CRPU hours) |
| NotificationsPublished | Count | a notification reached SNS |

The handler's `@metrics.log_metrics` flushes them once per invocation as EMF on stdout.
"""

from __future__ import annotations

import threading
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from crq.ledger import Outcome, RunEvent

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit


class MetricName(StrEnum):
    QUERIES_STARTED = "QueriesStarted"
    STARTS_QUEUED = "StartsQueued"
    SPECS_REJECTED = "SpecsRejected"
    QUERIES_SUCCEEDED = "QueriesSucceeded"
    QUERIES_FAILED = "QueriesFailed"
    QUERIES_RETRIED = "QueriesRetried"
    QUERY_DURATION = "QueryDuration"
    CRPU_UNITS = "CrpuUnits"
    NOTIFICATIONS_PUBLISHED = "NotificationsPublished"


class RunMetrics(Protocol):
    def query_started(self) -> None: ...
    def start_queued(self) -> None: ...
    def query_retried(self) -> None: ...
    def run_ended(self, outcome: Outcome) -> None: ...
    def notification_published(self) -> None: ...


class PowertoolsRunMetrics:
    """RunMetrics on a Powertools `Metrics` (the handler's, so one flush covers them all)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # A track pass records from several worker threads; Metrics keeps plain dicts.
        self._lock = threading.Lock()

    def _add(self, name: MetricName, unit: MetricUnit, value: float) -> None:
        with self._lock:
            self._metrics.add_metric(name=name.value, unit=unit, value=value)

    def _count(self, name: MetricName) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._add(name, MetricUnit.Count, 1)

    def query_started(self) -> None:
        self._count(MetricName.QUERIES_STARTED)

    def start_queued(self) -> None:
        self._count(MetricName.STARTS_QUEUED)

    def query_retried(self) -> None:
        self._count(MetricName.QUERIES_RETRIED)

    def notification_published(self) -> None:
        self._count(MetricName.NOTIFICATIONS_PUBLISHED)

    def run_ended(self, outcome: Outcome) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        if outcome.event is RunEvent.SPEC_REJECTED:
            self._count(MetricName.SPECS_REJECTED)
            return
        if outcome.event is RunEvent.QUERY_SUCCEEDED:
            self._count(MetricName.QUERIES_SUCCEEDED)
        else:
            self._count(MetricName.QUERIES_FAILED)
        if outcome.duration_ms is not None:
            self._add(MetricName.QUERY_DURATION, MetricUnit.Milliseconds, outcome.duration_ms)
        if outcome.crpu_units is not None:
            self._add(MetricName.CRPU_UNITS, MetricUnit.NoUnit, outcome.crpu_units)
