"""The start use case: from a trigger to a protected query, exactly once per trigger.

1. Ignore quietly what is not ours (another bucket, outside the prefix, not .yaml/.yml/.json, a
   folder marker, a delete).
2. The trigger names its run: the runId is derived from the trigger (design.md). The run is
   created conditionally, without a read first; a duplicate delivery learns of the run from the
   failed condition, reads it then, and only helps it along (a QUEUED run may be started; a
   STARTING one past its grace is reconciled; anything else is left alone).
3. Read the spec object version, validate, render at the trigger's time. A spec that fails is
   created ENDED (SPEC_REJECTED), its notification claimed, and notified; the handler returns
   normally (no retry).
4. The run is created in the state it will have: QUEUED if older runs of its membership are
   queued (first in, first out) or crq's own queries already fill the membership's slots (its
   membership's rows of the per-membership index), STARTING otherwise.
5. Starting: record the intent (created STARTING, or QUEUED -> STARTING, conditional, with the
   time and a fingerprint of the request), call StartProtectedQuery once, record the query id
   (STARTING -> RUNNING).
   A deferral (quota, throttling, IAM propagation) puts the run back to QUEUED; a refusal ends
   it START_FAILED; any other failure leaves it STARTING and propagates, so Lambda retries the
   event and the tracker reconciles the run (docs/reliability.md), a bounded number of times.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from crq.budget import budget_refusal
from crq.errors import SpecUnreadable, StaleRun, StartDeferred, StartRefused
from crq.events import NotOurs, SpecScheduled, SpecUploaded, StartTrigger
from crq.ledger import (
    ErrorInfo,
    FieldProblem,
    Outcome,
    Run,
    RunEvent,
    RunState,
    TriggerType,
    schedule_run_id,
    upload_run_id,
)
from crq.notifier import claimed_end, deliver, end_run, publish_claimed
from crq.ports import Pipeline, ProtectedQuery, QuerySummary
from crq.preflight import preflight
from crq.spec.names import claim_name, default_name

if TYPE_CHECKING:
    from crq.spec import Spec, SpecInvalid
    from crq.spec.render import RenderContext

# The spec chain (crq.spec: the Clean Rooms model checks, the YAML loader, the renderer) is
# imported where a spec is read, not at import: the track function, which imports this module,
# needs it only when it starts a queued run, and its cold start should not pay for it.

logger = Logger(child=True)

# Clean Rooms' createTime and the function's clock come from different hosts.
CLOCK_SKEW = timedelta(seconds=5)
# error.code of a run whose start calls kept failing without creating a query.
START_NOT_CONFIRMED = "START_NOT_CONFIRMED"


@dataclass(frozen=True)
class StartResult:
    """What happened, for the handler's return value and logs (never parameter values)."""

    outcome: str  # ignored | rejected | queued | started | start_failed | in_progress | ended
    run_id: str | None = None
    query_id: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class _Source:
    run_id: str
    bucket: str
    key: str
    version_id: str | None
    trigger_type: TriggerType
    trigger_time: datetime
    trigger_id: str | None


def start_run(trigger: StartTrigger, pipeline: Pipeline) -> StartResult:
    source = _source_of(trigger, pipeline)
    if isinstance(source, StartResult):
        logger.info("event ignored: not ours", extra={"reason": source.detail})
        return source
    # No read first: the run is created in the state it will have, conditionally; a duplicate
    # delivery learns that from the failed condition and only then reads the run.
    return _create(source, pipeline)


def _source_of(trigger: StartTrigger, pipeline: Pipeline) -> _Source | StartResult:
    settings = pipeline.settings
    match trigger:
        case NotOurs(reason=reason):
            return StartResult("ignored", detail=reason)
        case SpecUploaded() as up:
            from crq.spec.safe_load import format_of

            problem = None
            if up.bucket != settings.specs_bucket:
                problem = "another bucket"
            elif not up.key.startswith(settings.specs_prefix):
                problem = "outside the specs prefix"
            elif up.key.endswith("/"):
                problem = "a folder marker"
            elif format_of(up.key) is None:
                problem = "not a .yaml, .yml or .json file"
            if problem:
                return StartResult("ignored", detail=f"s3://{up.bucket}/{up.key}: {problem}")
            identity = up.version_id or up.etag or up.event_id
            return _Source(
                run_id=upload_run_id(up.bucket, up.key, identity),
                bucket=up.bucket,
                key=up.key,
                version_id=up.version_id,
                trigger_type=TriggerType.S3,
                trigger_time=up.time,
                trigger_id=up.event_id,
            )
        case SpecScheduled() as sched:
            return _Source(
                run_id=schedule_run_id(sched.spec_key, sched.scheduled_time),
                bucket=settings.specs_bucket,
                key=sched.spec_key,
                version_id=None,  # the object's current version when the schedule fires
                trigger_type=TriggerType.SCHEDULE,
                trigger_time=sched.scheduled_time,
                trigger_id=sched.execution_id or sched.schedule_arn,
            )
    raise TypeError(f"unknown trigger {trigger!r}")


def _create(source: _Source, pipeline: Pipeline) -> StartResult:
    from crq.spec import SpecInvalid, load_spec, render_request

    now = pipeline.clock()
    uri = f"s3://{source.bucket}/{source.key}"
    run = Run(
        run_id=source.run_id,
        state=RunState.QUEUED,
        created_at=now,
        updated_at=now,
        trigger_type=source.trigger_type,
        trigger_time=source.trigger_time,
        trigger_id=source.trigger_id,
        spec_bucket=source.bucket,
        spec_key=source.key,
        spec_version_id=source.version_id,
        spec_name=default_name(source.key, pipeline.settings.specs_prefix),
    )
    try:
        obj = pipeline.specs.get_spec(source.bucket, source.key, source.version_id)
        run = run.model_copy(update={"spec_version_id": obj.version_id, "spec_etag": obj.etag})
        spec = load_spec(obj.data, uri, default_name=run.spec_name, **_limits(pipeline))
        run = run.model_copy(update={"spec_name": spec.name})
        request = render_request(spec, _context(spec, run))
    except (SpecUnreadable, SpecInvalid) as exc:
        return _reject_new(run, _problems(exc), pipeline)
    # One live spec per name (crq.spec.names): a name another spec uses is a spec error.
    taken = claim_name(spec.name, source.bucket, source.key, pipeline)
    if taken is not None:
        return _reject_new(run, [taken], pipeline)

    run = run.model_copy(
        update={
            "membership_id": request["membershipIdentifier"],
            "max_attempts": spec.max_attempts,
            "max_runtime_minutes": spec.max_runtime_minutes
            or pipeline.settings.default_max_runtime_minutes,
            "notify_attributes": dict(spec.notify),
        }
    )
    reason = _reason_to_wait(run, pipeline)
    if reason:
        created = pipeline.ledger.create(run)
        if created is None:
            return _resume_by_id(run.run_id, pipeline)
        pipeline.metrics.start_queued()
        logger.info("run queued", extra={**_log(created), "reason": reason})
        return StartResult("queued", run_id=run.run_id, detail=reason)
    refused = _refusal(run, request, pipeline, now)
    if refused is not None:  # created ended: nothing is started, nothing billed
        return _end_new(run, refused, pipeline)
    # A free slot: the run is created STARTING (the intent), so one write precedes the call.
    salt = secrets.token_hex(16)
    starting = pipeline.ledger.create(_intent(run, request, salt, now))
    if starting is None:
        return _resume_by_id(run.run_id, pipeline)
    logger.info("run created starting", extra=_log(starting))
    return _call_start(starting, request, pipeline)


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


def _reject_new(run: Run, problems: list[FieldProblem], pipeline: Pipeline) -> StartResult:
    return _end_new(run, _rejection(problems, pipeline.clock()), pipeline)


def _end_new(run: Run, outcome: Outcome, pipeline: Pipeline) -> StartResult:
    """A new run that ends before any start (a rejected spec, a refusal): created ended and
    claimed in one write; this invocation publishes it."""
    created = pipeline.ledger.create(claimed_end(run, outcome, pipeline, outcome.ended_at))
    if created is None:
        return _resume_by_id(run.run_id, pipeline)
    logger.info("run ended before its start", extra={**_log(created), "event": outcome.event})
    pipeline.metrics.run_ended(outcome)
    publish_claimed(created, pipeline)
    return _refused_result(run, outcome)


def _refusal(
    run: Run, request: dict[str, Any], pipeline: Pipeline, now: datetime
) -> Outcome | None:
    """Preflight (docs/preflight.md) and the daily CRPU budget: what Clean Rooms would refuse,
    or the stack may not spend, refused before anything is billed."""
    if pipeline.collaboration is not None:
        problems = preflight(request, pipeline.settings, pipeline.collaboration)
        if problems:
            logger.info("spec rejected by preflight", extra={**_log(run), "errors": len(problems)})
            return _rejection(problems, now)
    refusal = budget_refusal(pipeline.settings, pipeline.ledger, now)  # the daily CRPU budget
    if refusal is not None:
        logger.warning("start refused: daily CRPU budget spent", extra=_log(run))
        return Outcome(event=RunEvent.START_FAILED, ended_at=now, error=refusal)
    return None


def _refused_result(run: Run, outcome: Outcome) -> StartResult:
    if outcome.event is RunEvent.SPEC_REJECTED:
        errors = len(outcome.errors or [])
        return StartResult("rejected", run_id=run.run_id, detail=f"{errors} error(s)")
    return StartResult(
        "start_failed", run_id=run.run_id, detail=outcome.error.code if outcome.error else None
    )


def _resume_by_id(run_id: str, pipeline: Pipeline) -> StartResult:
    # The conditional create found the run a moment ago; a read that misses it (a replica
    # lagging, the run just expired) is tried once more before concluding it is gone.
    existing = pipeline.ledger.get(run_id) or pipeline.ledger.get(run_id)
    if existing is None:  # created and already gone: nothing left to do for this trigger
        return StartResult("ended", run_id=run_id)
    return _resume(existing, pipeline)


def _resume(run: Run, pipeline: Pipeline) -> StartResult:
    """A trigger delivered again: help the run along, never start a second query."""
    logger.info("duplicate trigger", extra=_log(run))
    match run.state:
        case RunState.QUEUED:
            return launch(run, pipeline, wait_for_older=True)
        case RunState.STARTING:
            run = reconcile_starting(run, pipeline)
            return StartResult("in_progress", run_id=run.run_id, detail=f"run {run.state}")
        case RunState.RUNNING:
            return StartResult("in_progress", run_id=run.run_id, query_id=run.query_id)
        case RunState.ENDED:
            deliver(run, pipeline)
            return StartResult("ended", run_id=run.run_id, query_id=run.query_id)
    raise AssertionError(run.state)


def launch(
    run: Run, pipeline: Pipeline, *, spec: Spec | None = None, wait_for_older: bool = False
) -> StartResult:
    """Try to start a QUEUED run's query now.

    `wait_for_older`: stay queued behind older queued runs of the membership, and while crq's own
    queries fill its slots (the start path; the tracker, which counts slots itself, passes False).
    """
    from crq.spec import SpecInvalid, load_spec, render_request

    now = pipeline.clock()
    if run.retry_after is not None and run.retry_after > now:
        return StartResult("queued", run_id=run.run_id, detail="waiting to retry")
    if wait_for_older:
        reason = _reason_to_wait(run, pipeline)
        if reason:
            pipeline.metrics.start_queued()
            logger.info("run stays queued", extra={**_log(run), "reason": reason})
            return StartResult("queued", run_id=run.run_id, detail=reason)
    try:
        if spec is None:  # a queued run: re-read the spec version it was created from
            obj = pipeline.specs.get_spec(run.spec_bucket, run.spec_key, run.spec_version_id)
            spec = load_spec(
                obj.data, run.spec_source, default_name=run.spec_name, **_limits(pipeline)
            )
        request = render_request(spec, _context(spec, run))
    except (SpecUnreadable, SpecInvalid) as exc:
        end_run(run, _rejection(_problems(exc), now), pipeline)
        return StartResult("rejected", run_id=run.run_id)
    refused = _refusal(run, request, pipeline, now)
    if refused is not None:
        end_run(run, refused, pipeline)
        return _refused_result(run, refused)

    salt = run.fingerprint_salt or secrets.token_hex(16)
    try:
        starting = pipeline.ledger.save(_intent(run, request, salt, now))
    except StaleRun:
        logger.info("run taken by another invocation", extra=_log(run))
        return StartResult("in_progress", run_id=run.run_id)
    return _call_start(starting, request, pipeline)


def _call_start(starting: Run, request: dict[str, Any], pipeline: Pipeline) -> StartResult:
    """StartProtectedQuery, once, for a run recorded STARTING; record what it answered."""
    try:
        query = pipeline.queries.start_query(request)
    except StartDeferred as exc:
        return _defer(starting, exc, pipeline)
    except StartRefused as exc:
        error = ErrorInfo(code=exc.code, message=exc.message, retryable=False, reason=exc.reason)
        outcome = Outcome(event=RunEvent.START_FAILED, ended_at=pipeline.clock(), error=error)
        end_run(starting, outcome, pipeline)
        return StartResult("start_failed", run_id=starting.run_id, detail=exc.code)
    running = mark_running(starting, query, pipeline)
    return StartResult("started", run_id=running.run_id, query_id=query.id)


def mark_running(run: Run, query: ProtectedQuery | QuerySummary, pipeline: Pipeline) -> Run:
    now = pipeline.clock()
    try:
        running = pipeline.ledger.save(
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
            "query started but the run changed meanwhile", extra={**_log(run), "queryId": query.id}
        )
        raise
    pipeline.metrics.query_started()
    logger.info("query started", extra={**_log(running), "queryId": query.id})
    return running


def _defer(run: Run, exc: StartDeferred, pipeline: Pipeline) -> StartResult:
    settings = pipeline.settings
    now = pipeline.clock()
    retry_after: datetime | None = None
    deferrals = run.deferrals
    if exc.code == StartDeferred.IAM_DELAY:
        deferrals += 1
        if deferrals > settings.iam_max_deferrals:
            error = ErrorInfo(code=exc.code, message=exc.message, retryable=False)
            end_run(run, Outcome(event=RunEvent.START_FAILED, ended_at=now, error=error), pipeline)
            return StartResult("start_failed", run_id=run.run_id, detail=exc.code)
        retry_after = now + settings.iam_retry_after
    elif exc.code == StartDeferred.THROTTLED:
        retry_after = now + settings.throttle_retry_after
    pipeline.ledger.save(
        run.evolve(
            now,
            state=RunState.QUEUED,
            starting_at=None,
            retry_after=retry_after,
            deferrals=deferrals,
        )
    )
    pipeline.metrics.start_queued()
    logger.info("start deferred; run queued", extra={**_log(run), "code": exc.code})
    return StartResult("queued", run_id=run.run_id, detail=exc.code)


def _reason_to_wait(run: Run, pipeline: Pipeline) -> str | None:
    assert run.membership_id is not None
    same = [
        other
        for other in pipeline.ledger.active_in_membership(run.membership_id)
        if other.run_id != run.run_id
    ]
    mine = run.in_flight_since
    older = [o for o in same if o.state is RunState.QUEUED and o.in_flight_since < mine]
    if older:
        return f"behind {len(older)} older queued run(s)"
    busy = [o for o in same if o.state in (RunState.STARTING, RunState.RUNNING)]
    if len(busy) >= pipeline.settings.membership_query_cap:
        return f"{len(busy)} crq queries already hold the membership's slots"
    return None


def reconcile_starting(
    run: Run, pipeline: Pipeline, listed: list[QuerySummary] | None = None
) -> Run:
    """Settle a run whose StartProtectedQuery call may or may not have taken effect.

    Only once the grace has passed (no call of the run can still be in flight): a query of the
    membership created in [startingAt - skew, startingAt + grace], unknown to the ledger, whose
    request matches the run's fingerprint, is the run's query (RUNNING); if none exists, the call
    never took effect and the run is QUEUED again, attempt unchanged, unless that has happened
    `max_unconfirmed_starts` times: then the run ends START_FAILED (START_NOT_CONFIRMED).
    """
    assert run.starting_at is not None and run.membership_id is not None
    now = pipeline.clock()
    grace = pipeline.settings.starting_grace
    if now < run.starting_at + grace:
        return run
    low, high = run.starting_at - CLOCK_SKEW, run.starting_at + grace
    if listed is None:
        listed = pipeline.queries.list_queries(run.membership_id, not_before=low)
    candidates = sorted(
        (q for q in listed if low <= q.create_time <= high and q.id not in run.past_query_ids),
        key=lambda q: q.create_time,
    )
    for candidate in candidates:
        if pipeline.ledger.find_by_query(candidate.id) is not None:
            continue
        query = pipeline.queries.get_query(run.membership_id, candidate.id)
        if fingerprint_matches(run, query):
            logger.info(
                "start reconciled: the query exists", extra={**_log(run), "queryId": query.id}
            )
            try:
                return mark_running(run, query, pipeline)
            except StaleRun:
                return run
    unconfirmed = run.unconfirmed_starts + 1
    if unconfirmed >= pipeline.settings.max_unconfirmed_starts:
        # A start that keeps failing (a request Clean Rooms answers with 5xx, say) must not be
        # tried forever: report it, like any start Clean Rooms will not take.
        logger.warning("start never took effect; giving up", extra=_log(run))
        error = ErrorInfo(
            code=START_NOT_CONFIRMED,
            message=f"StartProtectedQuery was tried {unconfirmed} times and created no query "
            "(server errors, timeouts or crashes: the functions' logs have each error)",
            retryable=False,
        )
        outcome = Outcome(event=RunEvent.START_FAILED, ended_at=now, error=error)
        return end_run(run, outcome, pipeline) or run
    logger.info("start reconciled: no query was created; queued again", extra=_log(run))
    try:
        return pipeline.ledger.save(
            run.evolve(now, state=RunState.QUEUED, starting_at=None, unconfirmed_starts=unconfirmed)
        )
    except StaleRun:
        return run


def request_fingerprint(request: Mapping[str, Any], salt: str) -> str:
    """`<what>:<where>`: keyed hashes of the query (text or template ARN, parameters with their
    values) and of the result destinations. Parameter values are sensitive, so only a salted
    hash of them is stored."""
    sql = request.get("sqlParameters") or {}
    what = {
        "query": sql.get("queryString") or sql.get("analysisTemplateArn") or "",
        "parameters": sql.get("parameters") or {},
    }
    return f"{_keyed(salt, what)}:{_keyed(salt, _destinations(request))}"


def fingerprint_matches(run: Run, query: ProtectedQuery) -> bool:
    if not run.request_fingerprint or not run.fingerprint_salt:
        return False
    expected_what, _, expected_where = run.request_fingerprint.partition(":")
    seen = {"sqlParameters": query.sql_parameters or {}}
    if query.result_configuration is not None:
        seen["resultConfiguration"] = query.result_configuration
    what, _, where = request_fingerprint(seen, run.fingerprint_salt).partition(":")
    if not hmac.compare_digest(what, expected_what):
        return False
    # Destinations are compared only when Clean Rooms returns them.
    return query.result_configuration is None or hmac.compare_digest(where, expected_where)


def _destinations(request: Mapping[str, Any]) -> list[list[str]]:
    output = (request.get("resultConfiguration") or {}).get("outputConfiguration") or {}
    locations = [output, *((output.get("distribute") or {}).get("locations") or [])]
    found = []
    for location in locations:
        if s3 := location.get("s3"):
            found.append(["s3", s3.get("bucket", ""), s3.get("keyPrefix", "")])
        if member := location.get("member"):
            found.append(["member", member.get("accountId", "")])
    return sorted(found)


def _keyed(salt: str, value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(salt.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def _limits(pipeline: Pipeline) -> dict[str, int]:
    """The stack's limits on specs (load_spec's keyword arguments)."""
    return {"min_schedule_interval_minutes": pipeline.settings.min_schedule_interval_minutes}


def _context(spec: Spec, run: Run) -> RenderContext:
    return spec.render_context(run.trigger_time, run.trigger_type.value)


def _problems(exc: SpecUnreadable | SpecInvalid) -> list[FieldProblem]:
    if isinstance(exc, SpecUnreadable):
        return [FieldProblem(field="", message=exc.reason)]
    return [FieldProblem(field=e.field, message=e.message) for e in exc.errors]


def _rejection(problems: list[FieldProblem], now: datetime) -> Outcome:
    return Outcome(event=RunEvent.SPEC_REJECTED, ended_at=now, errors=problems)


def _log(run: Run) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "spec": run.spec_source,
        "specName": run.spec_name,
        "state": run.state.value,
        "attempt": run.attempt,
        "membershipId": run.membership_id,
    }
