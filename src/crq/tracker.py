"""The track use case: learn how in-flight runs are doing, end them, fill free slots, notify.

Per membership with runs in flight, one `ListProtectedQueries` (newest first, paging only until
past the oldest query it needs), then `GetProtectedQuery` only for runs whose query the list
shows ended, or does not show at all. From the same list it counts the membership's active
queries (crq's or not) and starts queued runs, oldest first, into the free slots.

Also here: the max runtime (cancel once, notify QUERY_CANCELLED with the reason), retries of
attempts that failed with a retryable error, reconciliation of STARTING runs past their grace,
and re-publishing notifications whose claim expired.

The fast path (an `aws.cleanrooms` event) is a wake-up for one (membership, query): re-read that
query, end its run if it ended, and, if the membership has queued runs, do the membership's pass.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger

from crq.budget import billed_units, record_attempt
from crq.deadline import Deadline
from crq.delivery import deliver
from crq.errors import CrqError, QueryAlreadyEnded, QueryNotFound, ResultsUnavailable, StaleRun
from crq.ledger import (
    ActiveRun,
    AttemptCost,
    ErrorInfo,
    Outcome,
    ResultObject,
    Run,
    RunEvent,
    RunState,
)
from crq.lifecycle import (
    CLOCK_SKEW,
    StartOutcome,
    end_run,
    reconcile_starting,
    retry_attempt,
    submit,
)
from crq.ports import (
    ACTIVE_STATUSES,
    Collaborators,
    ProtectedQuery,
    QueryStatus,
    QuerySummary,
)
from crq.triggers import QueryChanged, TrackAll, TrackRequest

logger = Logger(child=True)

EVENTS_BY_STATUS: dict[str, RunEvent] = {
    QueryStatus.SUCCESS: RunEvent.QUERY_SUCCEEDED,
    QueryStatus.FAILED: RunEvent.QUERY_FAILED,
    QueryStatus.CANCELLED: RunEvent.QUERY_CANCELLED,
    QueryStatus.TIMED_OUT: RunEvent.QUERY_TIMED_OUT,
}
# Error codes of failed queries worth one more attempt when Clean Rooms does not say
# (`error.retry.retryable` is newer than the botocore model crq is built against).
TRANSIENT_ERROR_CODES = frozenset(
    {
        "INTERNAL_ERROR",
        "INTERNAL_SERVER_ERROR",
        "INTERNAL_SERVICE_ERROR",
        "SERVICE_UNAVAILABLE",
        "INSUFFICIENT_CAPACITY",
        "CAPACITY_UNAVAILABLE",
        "THROTTLED",
        "THROTTLING",
    }
)
QUERY_NOT_FOUND = "QUERY_NOT_FOUND"
# The notification lists at most this many result files (an SNS message is at most 256 KiB).
MAX_RESULT_OBJECTS = 500


@dataclass
class TrackSummary:
    in_flight: int = 0
    memberships: int = 0
    ended: int = 0
    started: int = 0
    retried: int = 0
    cancelled: int = 0
    notified: int = 0
    deferred: int = 0  # units of work left for the next tick when the time budget ran out
    failures: list[str] = field(default_factory=list)
    ignored: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a counter; workers of one pass count concurrently."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def failed(self, what: str) -> None:
        with self._lock:
            self.failures.append(what)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "inFlight": self.in_flight,
            "memberships": self.memberships,
            "ended": self.ended,
            "started": self.started,
            "retried": self.retried,
            "cancelled": self.cancelled,
            "notified": self.notified,
        }
        if self.deferred:
            out["deferred"] = self.deferred
        if self.failures:
            out["failures"] = self.failures
        if self.ignored:
            out["ignored"] = self.ignored
        return out


class TrackIncomplete(CrqError):
    """Some memberships could not be tracked; the others were. Raised at the end of a pass so
    the invocation fails visibly (and the next tick tries again)."""


@dataclass
class _Pass:
    """One track pass: its collaborators, its time budget, and its two worker pools (one for
    memberships, one for the runs within them, so a membership waiting on its runs never holds
    the workers those runs need)."""

    deps: Collaborators
    summary: TrackSummary
    deadline: Deadline
    memberships: ThreadPoolExecutor
    runs: ThreadPoolExecutor

    def unit(self, pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn` on `pool` unless the budget is spent by the time a worker takes it up: then
        it is counted deferred and left as it is in the ledger, for the next tick."""

        def guarded() -> Any:
            if self.deadline.passed():
                self.summary.count("deferred")
                return None
            return fn(*args)

        return pool.submit(guarded)


def track_in_flight(
    deps: Collaborators, request: TrackRequest | None = None, deadline: Deadline | None = None
) -> TrackSummary:
    request = request or TrackAll("tick")
    summary = TrackSummary()
    workers = deps.settings.track_workers
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="crq-membership") as memberships,
        ThreadPoolExecutor(workers, thread_name_prefix="crq-run") as runs,
    ):
        work = _Pass(deps, summary, deadline or Deadline.never(), memberships, runs)
        if isinstance(request, QueryChanged):
            _wake_up(request, work)
        else:
            _tick(work)
    if summary.deferred:
        logger.warning(
            "time budget spent: the rest waits for the next tick",
            extra={"deferred": summary.deferred},
        )
    if summary.failures:
        raise TrackIncomplete("; ".join(summary.failures))
    return summary


def _tick(work: _Pass) -> None:
    deps, summary = work.deps, work.summary
    runs = deps.ledger.in_flight()
    summary.in_flight = len(runs)
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.state is not RunState.ENDED and run.membership_id:
            groups[run.membership_id].append(run)
    summary.memberships = len(groups)
    futures = [
        work.unit(
            work.memberships, _guarded, membership_id, work, partial(_track_membership, group)
        )
        for membership_id, group in groups.items()
    ]
    futures += [
        work.unit(work.runs, _notify, run, deps, summary)
        for run in runs
        if run.state is RunState.ENDED
    ]
    _results(futures)


def _results(futures: list[Future[Any]]) -> list[Any]:
    """Every future's result, once all are done; then the first exception, if any."""
    wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [f.result() for f in futures]


def _wake_up(event: QueryChanged, work: _Pass) -> None:
    deps, summary = work.deps, work.summary
    # The run of that query alone (the ByQuery index), not every run in flight.
    run = deps.ledger.find_by_query(event.query_id)
    if run is None or run.membership_id != event.membership_id or not run.in_flight:
        # Not a query crq knows (or one it already finished): nothing to do.
        summary.ignored = "query not in flight"
        logger.debug("status event ignored", extra={"queryId": event.query_id})
        return
    summary.in_flight = summary.memberships = 1
    if run.state is RunState.RUNNING:
        try:
            query = deps.queries.get_query(event.membership_id, event.query_id)
        except QueryNotFound as exc:
            _end_not_found(run, exc, deps, summary)
        else:
            try:
                if query.ended:
                    _finish(run, query, deps, summary)
            except StaleRun:
                return  # the scheduled track got there first
    elif run.state is RunState.ENDED:
        _notify(run, deps, summary)
    # The ended query freed a slot: if the membership has queued runs, do its pass now.
    active = deps.ledger.active_in_membership(event.membership_id)
    if any(r.state is RunState.QUEUED for r in active):
        _guarded(event.membership_id, work, partial(_queued_pass, active))


def _queued_pass(active: list[ActiveRun], membership_id: str, work: _Pass) -> None:
    """The membership's pass on a status event, from its own rows of the per-membership index
    (never the whole in-flight index): the full runs holding its slots, and its oldest queued
    runs, as many as it has slots and as many again. Queued runs behind those are started by a
    later pass."""
    deps = work.deps
    queued = [r.run_id for r in active if r.state is RunState.QUEUED]
    wanted = [r.run_id for r in active if r.state is not RunState.QUEUED]
    wanted += queued[: 2 * deps.settings.membership_query_cap]
    group = [
        run
        for run in deps.ledger.get_many(wanted)
        if run.membership_id == membership_id and run.state is not RunState.ENDED
    ]
    _track_membership(group, membership_id, work)


def _guarded(membership_id: str, work: _Pass, step: Callable[[str, _Pass], None]) -> None:
    # One membership failing (e.g. access removed) must not stop the others from being tracked.
    try:
        step(membership_id, work)
    except Exception as exc:
        logger.exception("membership not tracked", extra={"membershipId": membership_id})
        work.summary.failed(f"{membership_id}: {type(exc).__name__}")


def _track_membership(runs: list[Run], membership_id: str, work: _Pass) -> None:
    deps, summary = work.deps, work.summary
    now = deps.clock()
    grace = deps.settings.starting_grace
    running = [r for r in runs if r.state is RunState.RUNNING]
    starting = [r for r in runs if r.state is RunState.STARTING]
    overdue_starting = [r for r in starting if r.starting_at and r.starting_at + grace <= now]

    listed = deps.queries.list_queries(
        membership_id, not_before=_oldest_needed(running, overdue_starting)
    )
    by_id = {q.id: q for q in listed}

    # The runs are independent of each other: end them (or cancel, or retry) concurrently.
    futures = [
        work.unit(work.runs, _track_running_once, run, by_id.get(run.query_id or ""), deps, summary)
        for run in running
    ]
    requeued = [
        after for after in _results(futures) if after is not None and after.state is RunState.QUEUED
    ]
    for run in overdue_starting:
        if work.deadline.passed():
            summary.count("deferred")
            continue
        after = reconcile_starting(run, deps, listed)
        if after.state is RunState.QUEUED:
            requeued.append(after)

    active = sum(1 for q in listed if q.status in ACTIVE_STATUSES)
    # A STARTING run inside its grace may hold a slot the list does not show yet.
    active += len(starting) - len(overdue_starting)
    free = deps.settings.membership_query_cap - active
    queued = sorted(
        [r for r in runs if r.state is RunState.QUEUED] + requeued, key=lambda r: r.in_flight_since
    )
    ready = [r for r in queued if r.retry_after is None or r.retry_after <= now]
    logger.info(
        "membership tracked",
        extra={
            "membershipId": membership_id,
            "running": len(running),
            "starting": len(starting),
            "queued": len(queued),
            "activeQueries": active,
            "freeSlots": max(free, 0),
        },
    )
    # Starts stay in order (oldest first) and one at a time: each may find the membership full.
    for run in ready[: max(free, 0)]:
        if work.deadline.passed():
            summary.count("deferred")
            break
        result = submit(run, deps)
        if result.outcome is StartOutcome.STARTED:
            summary.count("started")
        elif result.outcome is StartOutcome.QUEUED:
            break  # Clean Rooms says the membership is full after all: wait for the next pass


def _track_running_once(
    run: Run, listed: QuerySummary | None, deps: Collaborators, summary: TrackSummary
) -> Run | None:
    try:
        return _track_running(run, listed, deps, summary)
    except StaleRun:
        return None  # another invocation changed it; the next pass sees the result


def _oldest_needed(running: list[Run], starting: list[Run]) -> datetime | None:
    times = [r.query_create_time for r in running if r.query_create_time is not None]
    times += [r.starting_at - CLOCK_SKEW for r in starting if r.starting_at is not None]
    return min(times) if times else None


def _track_running(
    run: Run, listed: QuerySummary | None, deps: Collaborators, summary: TrackSummary
) -> Run | None:
    assert run.membership_id is not None and run.query_id is not None
    if listed is None or listed.ended:
        try:
            query = deps.queries.get_query(run.membership_id, run.query_id)
        except QueryNotFound as exc:
            return _end_not_found(run, exc, deps, summary)
        if query.ended:
            return _finish(run, query, deps, summary)
        listed = query
    return _enforce_max_runtime(run, listed, deps, summary)


def _enforce_max_runtime(
    run: Run, query: QuerySummary, deps: Collaborators, summary: TrackSummary
) -> Run | None:
    assert run.membership_id is not None and run.query_id is not None
    limit = run.max_runtime_minutes or deps.settings.default_max_runtime_minutes
    now = deps.clock()
    if run.cancel_requested_at is not None or now - query.create_time < timedelta(minutes=limit):
        return run
    reason = f"ran longer than maxRuntimeMinutes ({limit} minute{'s' if limit != 1 else ''})"
    try:
        deps.queries.cancel_query(run.membership_id, run.query_id)
    except QueryAlreadyEnded:
        current = deps.queries.get_query(run.membership_id, run.query_id)
        if current.ended:
            return _finish(run, current, deps, summary)
        # Already CANCELLING: an earlier request of crq's whose record was lost, or someone
        # else's. Either way it is being cancelled; record it with crq's reason.
    summary.count("cancelled")
    logger.info(
        "query cancelled", extra={"runId": run.run_id, "queryId": run.query_id, "reason": reason}
    )
    return deps.ledger.save(run.evolve(now, cancel_requested_at=now, cancel_reason=reason))


def _finish(
    run: Run, query: ProtectedQuery, deps: Collaborators, summary: TrackSummary
) -> Run | None:
    """End a run whose query ended, or queue its next attempt if the failure is transient."""
    now = deps.clock()
    # The attempt's cost: on the run (every notification carries each attempt's) and against
    # today's CRPU budget (crq.budget).
    attempt = AttemptCost(
        query_id=query.id, status=query.status, billed_units=billed_units(query.statistics)
    )
    record_attempt(deps.settings, deps.ledger, attempt, now)
    run = run.evolve(now, attempts=_with_attempt(run, attempt))
    error = None
    if query.error_code or query.error_message:
        code = query.error_code or "UNKNOWN"
        retryable = (
            query.error_retryable
            if query.error_retryable is not None
            else code.upper() in TRANSIENT_ERROR_CODES
        )
        error = ErrorInfo(code=code, message=query.error_message or "", retryable=retryable)
    if (
        query.status == QueryStatus.FAILED
        and error is not None
        and error.retryable
        and run.attempt < run.max_attempts
    ):
        return _retry(run, query, deps, summary)

    objects: list[ResultObject] | None = None
    truncated: bool | None = None
    not_listed: bool | None = None
    if query.status == QueryStatus.SUCCESS and query.result_output:
        try:
            objects, truncated = _result_objects(query.result_output, deps)
        except ResultsUnavailable as exc:
            # Tell the user the query ended, without the file list, rather than not at all,
            # and say so (result.objectsNotListed).
            not_listed = True
            logger.warning(
                "result objects not listed",
                extra={"runId": run.run_id, "location": exc.location, "reason": exc.reason},
            )
    reason = None
    if query.status == QueryStatus.CANCELLED:
        reason = run.cancel_reason or "cancelled outside crq"
    outcome = Outcome(
        event=EVENTS_BY_STATUS[query.status],
        ended_at=now,
        query_status=query.status,
        error=error,
        statistics=query.statistics,
        result_output=query.result_output,
        objects=objects,
        objects_truncated=truncated or None,
        objects_not_listed=not_listed,
        differential_privacy=query.differential_privacy,
        reason=reason,
    )
    ended = end_run(run.evolve(now, membership_arn=query.membership_arn), outcome, deps)
    if ended is not None:
        summary.count("ended")
        if ended.notified_at is not None:
            summary.count("notified")
    return ended


def _retry(run: Run, query: ProtectedQuery, deps: Collaborators, summary: TrackSummary) -> Run:
    again = retry_attempt(run, query, deps)
    summary.count("retried")
    return again


def _end_not_found(
    run: Run, exc: QueryNotFound, deps: Collaborators, summary: TrackSummary
) -> Run | None:
    error = ErrorInfo(
        code=QUERY_NOT_FOUND,
        message=f"Clean Rooms no longer knows protected query {exc.query_id}",
        retryable=False,
    )
    outcome = Outcome(event=RunEvent.QUERY_FAILED, ended_at=deps.clock(), error=error)
    assert run.query_id is not None
    attempt = AttemptCost(query_id=run.query_id, status=QUERY_NOT_FOUND)
    run = run.evolve(deps.clock(), attempts=_with_attempt(run, attempt))
    ended = end_run(run, outcome, deps)
    if ended is not None:
        summary.count("ended")
    return ended


def _with_attempt(run: Run, attempt: AttemptCost) -> list[AttemptCost]:
    # A query's ending processed twice (a retried invocation) is listed once.
    return [*(a for a in run.attempts if a.query_id != attempt.query_id), attempt]


def _result_objects(
    output: dict[str, Any], deps: Collaborators
) -> tuple[list[ResultObject] | None, bool]:
    """The files under the output's S3 location(s); None for an output with none (member
    results: there is nothing crq can list, so the notification leaves `objects` out)."""
    locations = []
    for holder in (output, output.get("distribute") or {}):
        location = (holder.get("s3") or {}).get("location")
        if isinstance(location, str) and location.startswith("s3://"):
            locations.append(location)
    if not locations:
        return None, False
    objects: list[ResultObject] = []
    truncated = False
    for location in locations:
        room = MAX_RESULT_OBJECTS - len(objects)
        if room <= 0:
            return objects, True
        found, more = deps.results.list_objects(location, room)
        objects.extend(found)
        truncated = truncated or more
    return objects, truncated


def _notify(run: Run, deps: Collaborators, summary: TrackSummary) -> None:
    after = deliver(run, deps)
    if after.notified_at is not None and run.notified_at is None:
        summary.count("notified")
