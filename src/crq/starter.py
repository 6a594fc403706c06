"""The start use case: from a trigger to a protected query, exactly once per trigger.

1. Ignore quietly what is not ours (another bucket, outside the prefix, not .yaml/.yml/.json, a
   folder marker, a delete).
2. The trigger names its run: the runId is derived from the trigger (design.md). The run is
   created conditionally, without a read first; a duplicate delivery learns of the run from the
   failed condition, reads it then, and only helps it along (a QUEUED run may be started; a
   STARTING one past its grace is reconciled; anything else is left alone).
3. Read the spec object version (or take the one the upload's schedule sync read), validate,
   render at the trigger's time. A spec that fails is
   created ENDED (SPEC_REJECTED), its notification claimed, and notified; the handler returns
   normally (no retry).
4. The run is created in the state it will have: QUEUED if older runs of its membership are
   queued (first in, first out) or crq's own queries already fill the membership's slots (its
   membership's rows of the per-membership index), STARTING otherwise. The spec's name is
   claimed (crq.spec.names) in the same write; only if another spec holds it is the claim
   decided on its own, before the run is created.
5. Starting: record the intent (created STARTING, or QUEUED -> STARTING, conditional, with the
   time and a fingerprint of the request), call StartProtectedQuery once, record the query id
   (STARTING -> RUNNING).
   The transitions and the start attempt are the run lifecycle's (crq.lifecycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from crq.delivery import deliver
from crq.errors import NameClaimed, SpecUnreadable
from crq.ledger import (
    FieldProblem,
    Outcome,
    Run,
    RunState,
    TriggerType,
    schedule_run_id,
    upload_run_id,
)
from crq.lifecycle import (
    StartOutcome,
    StartResult,
    create_ended,
    create_queued,
    create_starting,
    log_fields,
    problems_of,
    reason_to_wait,
    reconcile_starting,
    refusal,
    refused_result,
    rejection,
    render_context,
    spec_limits,
    submit,
    submit_recorded,
)
from crq.ports import Collaborators, SpecObject
from crq.spec.names import claim_name, default_name
from crq.triggers import NotOurs, SpecScheduled, SpecUploaded, StartTrigger

# The spec chain (crq.spec: the Clean Rooms model checks, the YAML loader, the renderer) is
# imported where a spec is read, not at import: a cold start that ignores its event should not
# pay for it.

logger = Logger(child=True)


@dataclass(frozen=True)
class _Source:
    run_id: str
    bucket: str
    key: str
    version_id: str | None
    trigger_type: TriggerType
    trigger_time: datetime
    trigger_id: str | None


def start_run(
    trigger: StartTrigger,
    deps: Collaborators,
    spec_object: SpecObject | None = None,
    no_schedule_record: str | None = None,
) -> StartResult:
    """`spec_object`: the spec version the trigger names, when the caller read it already
    (the upload's schedule sync), so it is read once per upload. `no_schedule_record`: the run
    is created only if that spec-state record holds no schedule to sync (else
    ScheduleRecordFound is raised and nothing is written; crq.uploads)."""
    source = _source_of(trigger, deps)
    if isinstance(source, StartResult):
        logger.info("event ignored: not ours", extra={"reason": source.detail})
        return source
    # No read first: the run is created in the state it will have, conditionally; a duplicate
    # delivery learns that from the failed condition and only then reads the run.
    return _create(source, deps, spec_object, no_schedule_record)


def _source_of(trigger: StartTrigger, deps: Collaborators) -> _Source | StartResult:
    settings = deps.settings
    match trigger:
        case NotOurs(reason=reason):
            return StartResult(StartOutcome.IGNORED, detail=reason)
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
                return StartResult(
                    StartOutcome.IGNORED, detail=f"s3://{up.bucket}/{up.key}: {problem}"
                )
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


@dataclass(frozen=True)
class _Conditions:
    """What the run's creating write also does: claim the spec's name, and check that the
    spec's state record has no schedule to sync (Ledger.create)."""

    claim: str | None = None
    record: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return {"claim_name": self.claim, "no_schedule_record": self.record}


def _create(
    source: _Source, deps: Collaborators, given: SpecObject | None, record: str | None
) -> StartResult:
    from crq.spec import SpecInvalid, load_spec, render_request

    now = deps.clock()
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
        spec_name=default_name(source.key, deps.settings.specs_prefix),
    )
    try:
        obj = given or deps.specs.get_spec(source.bucket, source.key, source.version_id)
        run = run.model_copy(update={"spec_version_id": obj.version_id, "spec_etag": obj.etag})
        spec = load_spec(obj.data, uri, default_name=run.spec_name, **spec_limits(deps))
        run = run.model_copy(update={"spec_name": spec.name})
        request = render_request(spec, render_context(spec, run))
    except (SpecUnreadable, SpecInvalid) as exc:
        return _reject_new(run, problems_of(exc), deps, _Conditions(record=record))
    run = run.model_copy(
        update={
            "membership_id": request["membershipIdentifier"],
            "max_attempts": spec.max_attempts,
            "max_runtime_minutes": spec.max_runtime_minutes
            or deps.settings.default_max_runtime_minutes,
            "notify_attributes": dict(spec.notify),
        }
    )
    # One live spec per name (crq.spec.names): claimed in the run's creating write. Held by
    # another spec: decided on its own (a name another live spec uses is a spec error; one its
    # holder no longer uses passes to this spec), then the run is created.
    try:
        return _place(run, request, deps, now, _Conditions(spec.name, record))
    except NameClaimed:
        taken = claim_name(spec.name, source.bucket, source.key, deps)
        if taken is not None:
            return _reject_new(run, [taken], deps, _Conditions(record=record))
        return _place(run, request, deps, now, _Conditions(record=record))


def _place(
    run: Run, request: dict[str, Any], deps: Collaborators, now: datetime, also: _Conditions
) -> StartResult:
    """Create the run in the state it will have (queued, refused, or starting), with `also` in
    the same write; start it if it may."""
    reason = reason_to_wait(run, deps)
    if reason:
        if create_queued(run, deps, reason, **also.kwargs()) is None:
            return _resume_by_id(run.run_id, deps)
        return StartResult(StartOutcome.QUEUED, run_id=run.run_id, detail=reason)
    refused = refusal(run, request, deps, now)
    if refused is not None:  # created ended: nothing is started, nothing billed
        return _end_new(run, refused, deps, also)
    # A free slot: the run is created STARTING (the intent), so one write precedes the call.
    starting = create_starting(run, request, deps, now, **also.kwargs())
    if starting is None:
        return _resume_by_id(run.run_id, deps)
    return submit_recorded(starting, request, deps)


def _reject_new(
    run: Run, problems: list[FieldProblem], deps: Collaborators, also: _Conditions
) -> StartResult:
    return _end_new(run, rejection(problems, deps.clock()), deps, also)


def _end_new(run: Run, outcome: Outcome, deps: Collaborators, also: _Conditions) -> StartResult:
    """A new run that ends before any start (a rejected spec, a refusal)."""
    if create_ended(run, outcome, deps, **also.kwargs()) is None:
        return _resume_by_id(run.run_id, deps)
    return refused_result(run, outcome)


def _resume_by_id(run_id: str, deps: Collaborators) -> StartResult:
    # The conditional create found the run a moment ago; a read that misses it (a replica
    # lagging, the run just expired) is tried once more before concluding it is gone.
    existing = deps.ledger.get(run_id) or deps.ledger.get(run_id)
    if existing is None:  # created and already gone: nothing left to do for this trigger
        return StartResult(StartOutcome.ENDED, run_id=run_id)
    return _resume(existing, deps)


def _resume(run: Run, deps: Collaborators) -> StartResult:
    """A trigger delivered again: help the run along, never start a second query."""
    logger.info("duplicate trigger", extra=log_fields(run))
    match run.state:
        case RunState.QUEUED:
            return submit(run, deps, wait_for_older=True)
        case RunState.STARTING:
            run = reconcile_starting(run, deps)
            return StartResult(
                StartOutcome.IN_PROGRESS, run_id=run.run_id, detail=f"run {run.state}"
            )
        case RunState.RUNNING:
            return StartResult(StartOutcome.IN_PROGRESS, run_id=run.run_id, query_id=run.query_id)
        case RunState.ENDED:
            deliver(run, deps)
            return StartResult(StartOutcome.ENDED, run_id=run.run_id, query_id=run.query_id)
    raise AssertionError(run.state)
