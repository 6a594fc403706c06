"""A run's lifecycle: the ledger state machine's transitions, and the one start attempt.

    new      -> QUEUED     create_queued: it waits (older queued runs, or no free slot)
    new      -> STARTING   create_starting: the intent, then submit_recorded
    new      -> ENDED      create_ended: a rejected spec, a refusal (nothing started)
    QUEUED   -> STARTING   submit: the intent recorded, with the request's fingerprint
    STARTING -> RUNNING    mark_running: StartProtectedQuery answered (or reconciled)
    STARTING -> QUEUED     defer (quota, throttling, IAM propagation), or
                           reconcile_starting: the call never took effect
    RUNNING  -> QUEUED     retry_attempt: a transient failure, the next attempt
    any      -> ENDED      end_run: the outcome recorded and its notification claimed in one
                           write, then published (crq.delivery)

`submit` is the one attempt at StartProtectedQuery (sent once, never retried: it has no client
token). A deferral puts the run back to QUEUED; a refusal ends it START_FAILED; any other failure
leaves it STARTING and propagates, so Lambda retries the event and `reconcile_starting` settles the
run once its grace has passed (docs/reliability.md): the query of the run is recognised by the
request fingerprint (`crq.fingerprint`), a bounded number of times.

The start use case (crq.starter) and the track use case (crq.tracker) both use this module and
never each other.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from crq.budget import budget_refusal
from crq.delivery import claimed_end, publish_claimed
from crq.errors import SpecUnreadable, StaleRun, StartDeferred, StartRefused
from crq.fingerprint import fingerprint_matches, request_fingerprint
from crq.ledger import ErrorInfo, FieldProblem, Outcome, Run, RunEvent, RunState
from crq.ports import Collaborators, ProtectedQuery, QuerySummary
from crq.preflight import preflight

if TYPE_CHECKING:
    from crq.spec import Spec, SpecInvalid
    from crq.spec.render import RenderContext

# The spec chain (crq.spec: the Clean Rooms model checks, the YAML loader, the renderer) is
# imported where a spec is read, not at import: the track function needs it only when it starts
# a queued run, and its cold start should not pay for it.

logger = Logger(child=True)

# Clean Rooms' createTime and the function's clock come from different hosts.
CLOCK_SKEW = timedelta(seconds=5)
# error.code of a run whose start calls kept failing without creating a query.
START_NOT_CONFIRMED = "START_NOT_CONFIRMED"


class StartOutcome(StrEnum):
    """What a start (or a start attempt) came to; the handler returns its value as is."""

    IGNORED = "ignored"  # not a trigger of crq's
    REJECTED = "rejected"  # the spec is invalid (SPEC_REJECTED)
    QUEUED = "queued"  # waiting for a slot, or to retry
    STARTED = "started"  # the query is running
    START_FAILED = "start_failed"  # Clean Rooms or the budget refused it (START_FAILED)
    IN_PROGRESS = "in_progress"  # another invocation is starting it, or it runs already
    ENDED = "ended"  # the run had already ended


@dataclass(frozen=True)
class StartResult:
    """What happened, for the handler's return value and logs (never parameter values)."""

    outcome: StartOutcome
    run_id: str | None = None
    query_id: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items() if value is not None}


def create_queued(
    run: Run,
    deps: Collaborators,
    reason: str,
    *,
    claim_name: str | None = None,
    no_schedule_record: str | None = None,
) -> Run | None:
    """A new run created QUEUED (it waits for `reason`); None if the trigger's run exists.

    `claim_name`, `no_schedule_record` (here and in the other creates): the spec name claimed,
    and the spec-state condition checked, in the same write (`Ledger.create`: NameClaimed or
    ScheduleRecordFound, and nothing written, when they do not hold)."""
    created = deps.ledger.create(run, claim_name=claim_name, no_schedule_record=no_schedule_record)
    if created is not None:
        deps.metrics.start_queued()
        logger.info("run queued", extra={**log_fields(created), "reason": reason})
    return created


def create_starting(
    run: Run,
    request: dict[str, Any],
    deps: Collaborators,
    now: datetime,
    *,
    claim_name: str | None = None,
    no_schedule_record: str | None = None,
) -> Run | None:
    """A new run created STARTING at `now` (the intent, so one write precedes the start call),
    to be submitted with `submit_recorded`; None if the trigger's run exists."""
    starting = deps.ledger.create(
        _intent(run, request, secrets.token_hex(16), now),
        claim_name=claim_name,
        no_schedule_record=no_schedule_record,
    )
    if starting is not None:
        logger.info("run created starting", extra=log_fields(starting))
    return starting


def create_ended(
    run: Run,
    outcome: Outcome,
    deps: Collaborators,
    *,
    claim_name: str | None = None,
    no_schedule_record: str | None = None,
) -> Run | None:
    """A new run that ends before any start (a rejected spec, a refusal): created ended and
    claimed in one write, counted, and its notification published by this invocation. None if
    the trigger's run exists."""
    created = deps.ledger.create(
        claimed_end(run, outcome, deps, outcome.ended_at),
        claim_name=claim_name,
        no_schedule_record=no_schedule_record,
    )
    if created is None:
        return None
    logger.info("run ended before its start", extra={**log_fields(created), "event": outcome.event})
    deps.metrics.run_ended(outcome)
    return publish_claimed(created, deps)


def submit(
    run: Run, deps: Collaborators, *, spec: Spec | None = None, wait_for_older: bool = False
) -> StartResult:
    """One attempt at starting a QUEUED run's query now: re-read and render its spec (or use
    `spec`), refuse what preflight or the budget refuses, record the intent (QUEUED -> STARTING,
    conditional), then `submit_recorded`.

    `wait_for_older`: stay queued behind older queued runs of the membership, and while crq's own
    queries fill its slots (the start path; the tracker, which counts slots itself, passes False).
    """
    from crq.spec import SpecInvalid, load_spec, render_request

    now = deps.clock()
    if run.retry_after is not None and run.retry_after > now:
        return StartResult(StartOutcome.QUEUED, run_id=run.run_id, detail="waiting to retry")
    if wait_for_older:
        reason = reason_to_wait(run, deps)
        if reason:
            deps.metrics.start_queued()
            logger.info("run stays queued", extra={**log_fields(run), "reason": reason})
            return StartResult(StartOutcome.QUEUED, run_id=run.run_id, detail=reason)
    try:
        if spec is None:  # a queued run: re-read the spec version it was created from
            obj = deps.specs.get_spec(run.spec_bucket, run.spec_key, run.spec_version_id)
            spec = load_spec(
                obj.data, run.spec_source, default_name=run.spec_name, **spec_limits(deps)
            )
        request = render_request(spec, render_context(spec, run))
    except (SpecUnreadable, SpecInvalid) as exc:
        end_run(run, rejection(problems_of(exc), now), deps)
        return StartResult(StartOutcome.REJECTED, run_id=run.run_id)
    refused = refusal(run, request, deps, now)
    if refused is not None:
        end_run(run, refused, deps)
        return refused_result(run, refused)

    salt = run.fingerprint_salt or secrets.token_hex(16)
    try:
        starting = deps.ledger.save(_intent(run, request, salt, now))
    except StaleRun:
        logger.info("run taken by another invocation", extra=log_fields(run))
        return StartResult(StartOutcome.IN_PROGRESS, run_id=run.run_id)
    return submit_recorded(starting, request, deps)


def submit_recorded(starting: Run, request: dict[str, Any], deps: Collaborators) -> StartResult:
    """StartProtectedQuery, once, for a run already recorded STARTING (its intent written, by
    `submit` or by the start use case creating it STARTING); record what it answered."""
    try:
        query = deps.queries.start_protected_query(request)
    except StartDeferred as exc:
        return defer(starting, exc, deps)
    except StartRefused as exc:
        error = ErrorInfo(code=exc.code, message=exc.message, retryable=False, reason=exc.reason)
        outcome = Outcome(event=RunEvent.START_FAILED, ended_at=deps.clock(), error=error)
        end_run(starting, outcome, deps)
        return StartResult(StartOutcome.START_FAILED, run_id=starting.run_id, detail=exc.code)
    running = mark_running(starting, query, deps)
    return StartResult(StartOutcome.STARTED, run_id=running.run_id, query_id=query.id)


def mark_running(run: Run, query: ProtectedQuery | QuerySummary, deps: Collaborators) -> Run:
    """STARTING -> RUNNING with `query`, the query StartProtectedQuery created (or the one
    reconciliation found). Raises StaleRun if another invocation moved the run meanwhile."""
    now = deps.clock()
    try:
        running = deps.ledger.save(
            run.evolve(
                now,
                state=RunState.RUNNING,
                query_id=query.id,
                membership_arn=query.membership_arn,
                query_create_time=query.create_time,
                query_status=query.status,
                deferrals=0,
                unconfirmed_starts=0,
            )
        )
    except StaleRun:
        # Another invocation moved the run while the call was in flight; it cannot have
        # re-queued it (that needs the grace to pass, which exceeds the function timeout).
        logger.error(
            "query started but the run changed meanwhile",
            extra={**log_fields(run), "queryId": query.id},
        )
        raise
    deps.metrics.query_started()
    logger.info("query started", extra={**log_fields(running), "queryId": query.id})
    return running


def defer(run: Run, exc: StartDeferred, deps: Collaborators) -> StartResult:
    """STARTING -> QUEUED after Clean Rooms said "not now": a full membership waits for a slot,
    throttling and IAM propagation for a retry time; IAM propagation only a bounded number of
    times, then the run ends START_FAILED."""
    settings = deps.settings
    now = deps.clock()
    retry_after: datetime | None = None
    deferrals = run.deferrals
    if exc.code == StartDeferred.IAM_DELAY:
        deferrals += 1
        if deferrals > settings.iam_max_deferrals:
            error = ErrorInfo(code=exc.code, message=exc.message, retryable=False)
            end_run(run, Outcome(event=RunEvent.START_FAILED, ended_at=now, error=error), deps)
            return StartResult(StartOutcome.START_FAILED, run_id=run.run_id, detail=exc.code)
        retry_after = now + settings.iam_retry_after
    elif exc.code == StartDeferred.THROTTLED:
        retry_after = now + settings.throttle_retry_after
    deps.ledger.save(
        run.evolve(
            now,
            state=RunState.QUEUED,
            starting_at=None,
            retry_after=retry_after,
            deferrals=deferrals,
        )
    )
    deps.metrics.start_queued()
    logger.info("start deferred; run queued", extra={**log_fields(run), "code": exc.code})
    return StartResult(StartOutcome.QUEUED, run_id=run.run_id, detail=exc.code)


def reconcile_starting(
    run: Run, deps: Collaborators, listed: list[QuerySummary] | None = None
) -> Run:
    """Settle a run whose StartProtectedQuery call may or may not have taken effect.

    Only once the grace has passed (no call of the run can still be in flight): a query of the
    membership created in [startingAt - skew, startingAt + grace], unknown to the ledger, whose
    request matches the run's fingerprint, is the run's query (RUNNING); if none exists, the call
    never took effect and the run is QUEUED again, attempt unchanged, unless that has happened
    `max_unconfirmed_starts` times: then the run ends START_FAILED (START_NOT_CONFIRMED).
    """
    assert run.starting_at is not None and run.membership_id is not None
    now = deps.clock()
    grace = deps.settings.starting_grace
    if now < run.starting_at + grace:
        return run
    low, high = run.starting_at - CLOCK_SKEW, run.starting_at + grace
    if listed is None:
        listed = deps.queries.list_queries(run.membership_id, not_before=low)
    candidates = sorted(
        (q for q in listed if low <= q.create_time <= high and q.id not in run.past_query_ids),
        key=lambda q: q.create_time,
    )
    for candidate in candidates:
        if deps.ledger.find_by_query(candidate.id) is not None:
            continue
        query = deps.queries.get_query(run.membership_id, candidate.id)
        if fingerprint_matches(run, query):
            logger.info(
                "start reconciled: the query exists", extra={**log_fields(run), "queryId": query.id}
            )
            try:
                return mark_running(run, query, deps)
            except StaleRun:
                return run
    unconfirmed = run.unconfirmed_starts + 1
    if unconfirmed >= deps.settings.max_unconfirmed_starts:
        # A start that keeps failing (a request Clean Rooms answers with 5xx, say) must not be
        # tried forever: report it, like any start Clean Rooms will not take.
        logger.warning("start never took effect; giving up", extra=log_fields(run))
        error = ErrorInfo(
            code=START_NOT_CONFIRMED,
            message=f"StartProtectedQuery was tried {unconfirmed} times and created no query "
            "(server errors, timeouts or crashes: the functions' logs have each error)",
            retryable=False,
        )
        outcome = Outcome(event=RunEvent.START_FAILED, ended_at=now, error=error)
        return end_run(run, outcome, deps) or run
    logger.info("start reconciled: no query was created; queued again", extra=log_fields(run))
    try:
        return deps.ledger.save(
            run.evolve(now, state=RunState.QUEUED, starting_at=None, unconfirmed_starts=unconfirmed)
        )
    except StaleRun:
        return run


def reason_to_wait(run: Run, deps: Collaborators) -> str | None:
    assert run.membership_id is not None
    same = [
        other
        for other in deps.ledger.active_in_membership(run.membership_id)
        if other.run_id != run.run_id
    ]
    mine = run.in_flight_since
    older = [o for o in same if o.state is RunState.QUEUED and o.in_flight_since < mine]
    if older:
        return f"behind {len(older)} older queued run(s)"
    busy = [o for o in same if o.state in (RunState.STARTING, RunState.RUNNING)]
    if len(busy) >= deps.settings.membership_query_cap:
        return f"{len(busy)} crq queries already hold the membership's slots"
    return None


def _intent(run: Run, request: dict[str, Any], salt: str, now: datetime) -> Run:
    """The run as recorded just before StartProtectedQuery: STARTING, with a fingerprint."""
    from crq.spec import redacted_request

    return run.evolve(
        now,
        state=RunState.STARTING,
        starting_at=now,
        request=redacted_request(request),
        request_fingerprint=request_fingerprint(request, salt),
        fingerprint_salt=salt,
        retry_after=None,
    )


def refusal(
    run: Run, request: dict[str, Any], deps: Collaborators, now: datetime
) -> Outcome | None:
    """Preflight (docs/preflight.md) and the daily CRPU budget: what Clean Rooms would refuse,
    or the stack may not spend, refused before anything is billed."""
    if deps.collaboration is not None:
        problems = preflight(request, deps.settings, deps.collaboration)
        if problems:
            logger.info(
                "spec rejected by preflight", extra={**log_fields(run), "errors": len(problems)}
            )
            return rejection(problems, now)
    over_budget = budget_refusal(deps.settings, deps.ledger, now)  # the daily CRPU budget
    if over_budget is not None:
        logger.warning("start refused: daily CRPU budget spent", extra=log_fields(run))
        return Outcome(event=RunEvent.START_FAILED, ended_at=now, error=over_budget)
    return None


def refused_result(run: Run, outcome: Outcome) -> StartResult:
    if outcome.event is RunEvent.SPEC_REJECTED:
        errors = len(outcome.errors or [])
        return StartResult(StartOutcome.REJECTED, run_id=run.run_id, detail=f"{errors} error(s)")
    return StartResult(
        StartOutcome.START_FAILED,
        run_id=run.run_id,
        detail=outcome.error.code if outcome.error else None,
    )


def retry_attempt(run: Run, failed: ProtectedQuery, deps: Collaborators) -> Run:
    """RUNNING -> QUEUED for the next attempt, after `failed` ended with a transient error."""
    now = deps.clock()
    again = deps.ledger.save(
        run.evolve(
            now,
            state=RunState.QUEUED,
            attempt=run.attempt + 1,
            past_query_ids=[*run.past_query_ids, failed.id],
            query_id=None,
            query_create_time=None,
            query_status=None,
            starting_at=None,
            cancel_requested_at=None,
            cancel_reason=None,
        )
    )
    deps.metrics.query_retried()
    logger.info(
        "attempt failed with a transient error; queued again",
        extra={
            "runId": run.run_id,
            "queryId": failed.id,
            "errorCode": failed.error_code,
            "attempt": again.attempt,
            "maxAttempts": again.max_attempts,
        },
    )
    return again


def end_run(run: Run, outcome: Outcome, deps: Collaborators) -> Run | None:
    """Record how a run ended, claiming its notification in the same write, count it, and
    publish the notification.

    Returns None if another invocation changed the run first (it owns the ending then).
    """
    now = deps.clock()
    try:
        ended = deps.ledger.save(claimed_end(run, outcome, deps, now))
    except StaleRun:
        logger.info("run ended elsewhere", extra={"runId": run.run_id})
        return None
    deps.metrics.run_ended(outcome)
    logger.info(
        "run ended",
        extra={
            "runId": run.run_id,
            "specName": run.spec_name,
            "event": outcome.event.value,
            "attempt": run.attempt,
            "queryId": run.query_id,
            "errorCode": outcome.error.code if outcome.error else None,
        },
    )
    return publish_claimed(ended, deps)


def spec_limits(deps: Collaborators) -> dict[str, int]:
    """The stack's limits on specs (load_spec's keyword arguments)."""
    return {"min_schedule_interval_minutes": deps.settings.min_schedule_interval_minutes}


def render_context(spec: Spec, run: Run) -> RenderContext:
    return spec.render_context(run.trigger_time, run.trigger_type.value)


def problems_of(exc: SpecUnreadable | SpecInvalid) -> list[FieldProblem]:
    if isinstance(exc, SpecUnreadable):
        return [FieldProblem(field="", message=exc.reason)]
    return [FieldProblem(field=e.field, message=e.message) for e in exc.errors]


def rejection(problems: list[FieldProblem], now: datetime) -> Outcome:
    return Outcome(event=RunEvent.SPEC_REJECTED, ended_at=now, errors=problems)


def log_fields(run: Run) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "spec": run.spec_source,
        "specName": run.spec_name,
        "state": run.state.value,
        "attempt": run.attempt,
        "membershipId": run.membership_id,
    }
