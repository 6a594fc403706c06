"""The schedule use case: a spec upload or deletion sets, changes or removes the spec's schedule.

1. Ignore what is not a spec (another bucket, outside the prefix, a folder, not .yaml/.yml/.json).
2. Read the uploaded version: its `schedule` (with its `timezone`) is the desired schedule; an
   invalid or unreadable spec, or a deleted one, wants none (a deletion that leaves a current
   version, an old version's or a delete marker's, leaves what that version wants). Whether the upload also runs now
   (`run_now`) follows that version: unscheduled specs run as always, scheduled ones only with
   `runOnUpload`; invalid ones go on to the start use case, which rejects them (SPEC_REJECTED).
3. Nothing to do, nothing written: a key that never had a schedule and wants none.
4. Ordering: the spec-state record (crq.schedule_state) holds the S3 sequencer of the last event
   applied. A claim is a conditional write that only a later event (or a retry of the same,
   unfinished one) wins, so duplicates and late old versions change nothing. A version that is
   no longer the object's current one (a newer upload or a deletion happened) sets nothing.
   (Two events of one key never share a sequencer in S3; moto gives every event the same one,
   so an equal sequencer with another object version counts as a new event.)
5. Apply, then re-read the record: if another invocation claimed a later event meanwhile, apply
   its schedule too, until the record stands still (the last write to Scheduler is the latest).
6. Announce the change (SCHEDULE_SET with the next three fire times, SCHEDULE_REMOVED), then
   mark the record applied. A failure before that leaves it unapplied: Lambda's retry of the
   event finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger

from crq.errors import ConfigError, SpecUnreadable
from crq.ports import SpecObject
from crq.schedule import At, Rate, build_schedule, local_to_utc, parse_expression, zone_of
from crq.schedule_notice import (
    SCHEDULE_REMOVED,
    SCHEDULE_SET,
    ScheduleNoticeSchedule,
    ScheduleNoticeSpec,
    ScheduleNotification,
    attributes,
    subject,
)
from crq.schedule_state import (
    DesiredSchedule,
    ManagedSchedule,
    ScheduleDeps,
    SpecState,
    StateClaimRefused,
    comparable_sequencer,
    schedule_name,
    state_id,
)
from crq.settings import Settings
from crq.spec import Spec, SpecInvalid, load_spec
from crq.spec.names import default_name
from crq.spec.safe_load import format_of
from crq.triggers import SpecDeleted, SpecUploaded

logger = Logger(child=True)

MAX_ROUNDS = 5
NEXT_FIRES = 3


class SyncOutcome(StrEnum):
    """What a schedule sync came to; the start function returns its value as is."""

    IGNORED = "ignored"  # not a spec of crq's, or a deletion of one that had no schedule
    UNSCHEDULED = "unscheduled"  # a spec without a schedule, which never had one
    SET = "set"  # the schedule was created or changed (SCHEDULE_SET published)
    REMOVED = "removed"  # the schedule was deleted (SCHEDULE_REMOVED published)
    UNCHANGED = "unchanged"  # already as the spec wants it
    DUPLICATE = "duplicate"  # this event was applied already
    STALE = "stale"  # a newer event of the spec was applied already
    SUPERSEDED = "superseded"  # a newer event of the spec followed this one


@dataclass(frozen=True)
class SyncResult:
    outcome: SyncOutcome
    run_now: bool
    schedule: str | None = None
    detail: str | None = None
    # The uploaded version as read here, for the start use case (one read per upload).
    spec_object: SpecObject | None = field(default=None, repr=False, compare=False)
    # An unscheduled upload whose spec-state record was not read (`defer_unscheduled`): the
    # run's creating write checks it has no schedule to sync (Ledger.create).
    unchecked_record: str | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        shown = {"outcome": str(self.outcome), "run_now": self.run_now}
        shown |= {"schedule": self.schedule, "detail": self.detail}
        return {key: value for key, value in shown.items() if value is not None}


@dataclass(frozen=True)
class _Wanted:
    desired: DesiredSchedule | None
    run_now: bool
    reason: str
    spec: Spec | None = None
    obj: SpecObject | None = None
    anchored_here: bool = False  # a rate without `start`: its start was set from this event

    def keeping_anchor(self, previous: SpecState | None) -> _Wanted:
        """A rate whose schedule did not change keeps counting from where it started."""
        had = previous.desired if previous is not None else None
        if not self.anchored_here or self.desired is None or had is None:
            return self
        if had.model_copy(update={"start": self.desired.start}) != self.desired:
            return self
        return replace(self, desired=had)


def sync_schedule(
    change: SpecUploaded | SpecDeleted, deps: ScheduleDeps, *, defer_unscheduled: bool = False
) -> SyncResult:
    """`defer_unscheduled`: an upload that wants no schedule and runs now does not read its
    spec-state record; the result names it (`unchecked_record`) for the run's creating write to
    check, and the caller syncs fully only if that check fails (crq.uploads)."""
    settings = deps.settings
    uploaded = isinstance(change, SpecUploaded)
    problem = _not_ours(change.bucket, change.key, settings)
    if problem:
        # An upload goes on to the start use case, which says why it ignores it.
        return SyncResult(SyncOutcome.IGNORED, run_now=uploaded, detail=problem)

    wanted = _wanted(change, deps)
    sid = state_id(change.bucket, change.key)
    name = schedule_name(change.key)
    if defer_unscheduled and uploaded and wanted.desired is None and wanted.run_now:
        # What step 3 finds for most uploads, checked by the run's write instead of a read.
        return SyncResult(
            SyncOutcome.UNSCHEDULED, True, name, spec_object=wanted.obj, unchecked_record=sid
        )
    sequencer = comparable_sequencer(change.sequencer or _time_sequencer(change.time))
    previous = deps.states.get(sid)
    wanted = wanted.keeping_anchor(previous)

    def result(outcome: SyncOutcome, detail: str | None = None) -> SyncResult:
        shown = name if outcome is not SyncOutcome.IGNORED else None
        read = wanted.obj if uploaded else None
        return SyncResult(outcome, wanted.run_now, shown, detail, spec_object=read)

    if previous is not None and previous.applied:
        if previous.sequencer > sequencer:
            return result(SyncOutcome.STALE)
        if previous.sequencer == sequencer and previous.version_id == change.version_id:
            return result(SyncOutcome.DUPLICATE)
    if wanted.desired is None and (
        previous is None or (previous.desired is None and previous.applied)
    ):
        if not uploaded:
            return result(SyncOutcome.IGNORED, "deleted; it had no schedule")
        return result(SyncOutcome.UNSCHEDULED)
    if (
        wanted.desired is not None
        and isinstance(change, SpecUploaded)
        and not _is_current(change, wanted.obj, deps)
    ):
        return result(SyncOutcome.SUPERSEDED, "a newer version or a deletion followed this upload")

    spec_name = wanted.spec.name if wanted.spec else (previous.spec_name if previous else "")
    state = SpecState(
        state_id=sid,
        bucket=change.bucket,
        spec_key=change.key,
        spec_name=spec_name or default_name(change.key, deps.settings.specs_prefix),
        sequencer=sequencer,
        version_id=change.version_id,
        desired=wanted.desired,
        reason=wanted.reason,
        updated_at=deps.clock(),
    )
    try:
        deps.states.claim(state)
    except StateClaimRefused as refused:
        stale = refused.current.sequencer > sequencer
        return result(SyncOutcome.STALE if stale else SyncOutcome.DUPLICATE)

    if _converge(state, deps).sequencer != state.sequencer:
        logger.info("schedule change overtaken by a later event", extra=_log(state))
        return result(SyncOutcome.SUPERSEDED, "a later event of this spec was applied")

    outcome = _announce(state, previous, wanted, deps)
    deps.states.mark_applied(state)
    logger.info("schedule synced", extra={**_log(state), "outcome": outcome})
    return result(outcome)


def managed_schedule(
    spec_key: str, desired: DesiredSchedule, settings: Settings
) -> ManagedSchedule:
    """The Scheduler schedule of a spec key wanting `desired`, in the stack's group."""
    missing = [
        var
        for var, value in (
            ("CRQ_SCHEDULE_GROUP", settings.schedule_group),
            ("CRQ_SCHEDULER_ROLE_ARN", settings.scheduler_role_arn),
            ("CRQ_SCHEDULE_TARGET_ARN", settings.schedule_target_arn),
        )
        if not value
    ]
    if missing:
        raise ConfigError("crq cannot manage schedules: " + ", ".join(missing) + " not set")
    return ManagedSchedule(
        name=schedule_name(spec_key),
        group=settings.schedule_group,
        expression=desired.expression,
        timezone=desired.timezone,
        start=desired.start,
        end=desired.end,
        flexible_window_minutes=desired.flexible_window_minutes,
        target_arn=settings.schedule_target_arn,
        role_arn=settings.scheduler_role_arn,
        dead_letter_arn=settings.schedule_dead_letter_arn or None,
        input=ManagedSchedule.target_input(spec_key),
    )


def next_fire_times(
    desired: DesiredSchedule, after: datetime, count: int = NEXT_FIRES
) -> list[datetime]:
    """The next fire times of a desired schedule, in its zone (rates counted from `after`)."""
    schedule = build_schedule(
        desired.expression, desired.timezone, start=desired.start, end=desired.end
    )
    zone = zone_of(desired.timezone)
    fires = schedule.next_fires(after - timedelta(microseconds=1), count, created=after)
    return [instant.astimezone(zone) for instant in fires]


# ---- steps ----------------------------------------------------------------------------------


def _not_ours(bucket: str, key: str, settings: Settings) -> str | None:
    if bucket != settings.specs_bucket:
        return f"s3://{bucket}/{key}: another bucket"
    if not key.startswith(settings.specs_prefix):
        return f"s3://{bucket}/{key}: outside the specs prefix"
    if key.endswith("/"):
        return f"s3://{bucket}/{key}: a folder marker"
    if format_of(key) is None:
        return f"s3://{bucket}/{key}: not a .yaml, .yml or .json file"
    return None


def _wanted(change: SpecUploaded | SpecDeleted, deps: ScheduleDeps) -> _Wanted:
    """What the event's version wants; for a deletion, what the object's current version (if
    only an old version was deleted, or a delete marker removed) wants."""
    uri = f"s3://{change.bucket}/{change.key}"
    uploaded = isinstance(change, SpecUploaded)
    try:
        obj = deps.specs.get_spec(
            change.bucket, change.key, change.version_id if uploaded else None
        )
        spec = load_spec(
            obj.data,
            uri,
            default_name=default_name(change.key, deps.settings.specs_prefix),
            min_schedule_interval_minutes=deps.settings.min_schedule_interval_minutes,
        )
    except SpecUnreadable:
        reason = "the spec file cannot be read" if uploaded else "the spec file was deleted"
        return _Wanted(None, run_now=uploaded, reason=reason)
    except SpecInvalid:
        reason = "the spec is invalid (see SPEC_REJECTED)"
        return _Wanted(None, run_now=uploaded, reason=reason, obj=obj)
    if spec.schedule is None:
        return _Wanted(
            None, run_now=uploaded, reason="the spec has no schedule", spec=spec, obj=obj
        )
    start = spec.schedule.start
    expression = parse_expression(spec.schedule.expression)
    if isinstance(expression, At):
        when = local_to_utc(expression.local, zone_of(spec.timezone))
        if when is not None and when <= change.time:
            # Nothing left to fire (Scheduler would not take it): no schedule, said in the log.
            logger.warning("at() already passed: no schedule", extra={"spec": uri})
            return _Wanted(
                None,
                run_now=uploaded and spec.schedule.run_on_upload,
                reason=f"{spec.schedule.expression} has passed",
                spec=spec,
                obj=obj,
            )
    anchored_here = start is None and isinstance(expression, Rate)
    if start is None and isinstance(expression, Rate):
        # Scheduler starts a rate without a start date at once: that would run the spec at
        # upload. Its first run is one interval after the upload instead (the event's time, so
        # a retry of this event sets the same schedule).
        start = change.time.astimezone(UTC) + expression.interval
    desired = DesiredSchedule(
        expression=spec.schedule.expression,
        timezone=spec.timezone,
        start=start,
        end=spec.schedule.end,
        flexible_window_minutes=spec.schedule.flexible_window_minutes,
    )
    return _Wanted(
        desired,
        run_now=uploaded and spec.schedule.run_on_upload,
        reason="the spec was uploaded" if uploaded else "an old version was deleted",
        spec=spec,
        obj=obj,
        anchored_here=anchored_here,
    )


def _is_current(change: SpecUploaded, read: SpecObject | None, deps: ScheduleDeps) -> bool:
    """Whether the uploaded version is still the object's current one."""
    try:
        current = deps.specs.get_spec(change.bucket, change.key, None)
    except SpecUnreadable:
        return False  # deleted since
    if change.version_id is not None:
        return current.version_id == change.version_id
    return read is not None and current.etag == read.etag


def _converge(state: SpecState, deps: ScheduleDeps) -> SpecState:
    """Apply `state`, then any later state claimed meanwhile, until the record stands still."""
    current = state
    for _ in range(MAX_ROUNDS):
        _apply(current, deps)
        latest = deps.states.get(current.state_id)
        if latest is None or latest.sequencer == current.sequencer:
            return current
        current = latest
    raise RuntimeError(f"{state.spec_key}: its schedule kept changing; the event is retried")


def _apply(state: SpecState, deps: ScheduleDeps) -> None:
    if state.desired is None:
        deps.scheduler.delete(deps.settings.schedule_group, schedule_name(state.spec_key))
    else:
        deps.scheduler.put(managed_schedule(state.spec_key, state.desired, deps.settings))


def _announce(
    state: SpecState, previous: SpecState | None, wanted: _Wanted, deps: ScheduleDeps
) -> SyncOutcome:
    had = previous.desired if previous is not None else None
    if state.desired is None:
        if had is None:
            return SyncOutcome.UNCHANGED
        event, outcome = SCHEDULE_REMOVED, SyncOutcome.REMOVED
    elif previous is not None and previous.applied and had == state.desired:
        return SyncOutcome.UNCHANGED
    else:
        event, outcome = SCHEDULE_SET, SyncOutcome.SET
    now = deps.clock()
    shown = state.desired or had
    assert shown is not None
    notice = ScheduleNotification(
        event=event,  # type: ignore[arg-type]
        notification_id=f"{state.state_id}:{state.sequencer.lstrip('0') or '0'}:{event}",
        time=now,
        spec=ScheduleNoticeSpec(
            name=state.spec_name,
            source=f"s3://{state.bucket}/{state.spec_key}",
            version=state.version_id,
        ),
        schedule=ScheduleNoticeSchedule(
            name=schedule_name(state.spec_key),
            group=deps.settings.schedule_group,
            expression=shown.expression,
            timezone=shown.timezone,
            start=shown.start,
            end=shown.end,
            flexible_window_minutes=shown.flexible_window_minutes,
            next_fire_times=next_fire_times(shown, now) if state.desired else None,
        ),
        reason=state.reason,
    )
    notify = dict(wanted.spec.notify) if wanted.spec is not None else {}
    # PublishFailed propagates: the record stays unapplied and Lambda's retry announces it.
    deps.publisher.publish(subject(notice), notice.to_json(), attributes(notice, notify))
    return outcome


def _time_sequencer(time: datetime) -> str:
    """Events without a sequencer (none of S3's have none; hand-made ones may) order by time."""
    return f"{int(time.astimezone(UTC).timestamp() * 1_000_000):x}"


def _log(state: SpecState) -> dict[str, Any]:
    return {
        "spec": f"s3://{state.bucket}/{state.spec_key}",
        "schedule": schedule_name(state.spec_key),
        "sequencer": state.sequencer.lstrip("0"),
        "expression": state.desired.expression if state.desired else None,
    }
