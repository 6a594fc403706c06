"""The start function's use case (crq.uploads) with in-memory collaborators: an upload syncs its
spec's schedule, then starts a run unless the spec is scheduled; a deletion only syncs; a
schedule firing only starts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pipeline_fakes import (
    BUCKET,
    FakeScheduler,
    World,
    sql_spec,
    world,
)

from crq.ledger import RunState, TriggerType
from crq.schedule_state import ScheduleDeps
from crq.triggers import SpecDeleted, SpecScheduled, SpecUploaded
from crq.uploads import sync_and_start

KEY = "specs/weekly.yaml"
SCHEDULED = "schedule: cron(0 6 ? * MON *)\n"
SCHEDULE_SETTINGS = {
    "schedule_group": "crq-specs",
    "scheduler_role_arn": "arn:aws:iam::111111111111:role/crq-scheduler",
    "schedule_target_arn": "arn:aws:lambda:us-east-1:111111111111:function:crq-start",
}
_sequencers = itertools.count(1)


@dataclass
class Start:
    """The start function's world: the run side (World) and the schedule side, sharing the
    specs bucket, the topic and the table (the spec-state records live beside the runs)."""

    w: World
    scheduler: FakeScheduler
    schedule_deps: ScheduleDeps
    built: int = 0  # how often the schedule collaborators were asked for

    def deps(self) -> ScheduleDeps:
        self.built += 1
        return self.schedule_deps

    def upload(self, body: str) -> SpecUploaded:
        version = self.w.specs.put(KEY, body)
        self.w.clock.advance(seconds=1)
        return SpecUploaded(
            BUCKET, KEY, version, None, len(body), self.w.clock(), f"up-{version}", self._seq()
        )

    def delete(self) -> SpecDeleted:
        self.w.specs.objects.pop((BUCKET, KEY))
        self.w.clock.advance(seconds=1)
        return SpecDeleted(BUCKET, KEY, None, self.w.clock(), "del", self._seq())

    def handle(self, trigger: Any) -> dict[str, Any]:
        return sync_and_start(trigger, self.w.deps, self.deps)

    @staticmethod
    def _seq() -> str:
        return f"{next(_sequencers):016X}"


def start_world() -> Start:
    w = world(**SCHEDULE_SETTINGS)
    scheduler = FakeScheduler()
    schedule_deps = ScheduleDeps(
        w.deps.settings, w.specs, w.ledger.states, scheduler, w.publisher, clock=w.clock
    )
    return Start(w, scheduler, schedule_deps)


def test_an_unscheduled_upload_starts_its_run_from_the_one_read_of_its_spec() -> None:
    s = start_world()

    result = s.handle(s.upload(sql_spec()))

    assert result["outcome"] == "started" and "schedule" not in result
    [run] = s.w.ledger.rows.values()
    assert run.state is RunState.RUNNING and run.trigger_type is TriggerType.S3
    # One read of the spec object: the sync's, handed to the start
    assert s.w.specs.reads == 1
    # The spec-state record was not read: the run's write checked it
    assert s.w.ledger.states.records == {} and s.scheduler.calls == 0


def test_a_scheduled_upload_sets_its_schedule_and_starts_nothing() -> None:
    s = start_world()

    result = s.handle(s.upload(sql_spec(extra=SCHEDULED)))

    assert result["outcome"] == "set"
    assert s.w.ledger.rows == {} and s.w.cleanrooms.queries == {}
    [schedule] = s.scheduler.schedules.values()
    assert schedule.expression == "cron(0 6 ? * MON *)"


def test_a_scheduled_upload_asking_to_run_on_upload_does_both() -> None:
    s = start_world()

    on_upload = "schedule: {expression: cron(0 6 ? * MON *), runOnUpload: true}\n"
    result = s.handle(s.upload(sql_spec(extra=on_upload)))

    assert (result["outcome"], result["schedule"]) == ("started", "set")
    assert len(s.scheduler.schedules) == 1 and len(s.w.ledger.rows) == 1


def test_an_upload_that_drops_the_schedule_removes_it_before_its_run_starts() -> None:
    # Given a spec that was scheduled
    s = start_world()
    s.handle(s.upload(sql_spec(extra=SCHEDULED)))
    assert len(s.scheduler.schedules) == 1

    # When a version without a schedule is uploaded
    result = s.handle(s.upload(sql_spec()))

    # Then the run's write found the record holding a schedule: the schedule was removed
    # first (as for any upload that changes it), and the run started after it
    assert (result["outcome"], result["schedule"]) == ("started", "removed")
    assert s.scheduler.schedules == {}
    [run] = s.w.ledger.rows.values()
    assert run.state is RunState.RUNNING
    [record] = s.w.ledger.states.records.values()
    assert record.applied and record.desired is None


def test_a_deletion_only_syncs_the_schedule() -> None:
    s = start_world()
    s.handle(s.upload(sql_spec(extra=SCHEDULED)))

    result = s.handle(s.delete())

    assert result["outcome"] == "removed"
    assert s.scheduler.schedules == {} and s.w.ledger.rows == {}


def test_a_schedule_firing_starts_a_run_without_syncing_anything() -> None:
    s = start_world()
    s.w.specs.put(KEY, sql_spec(extra=SCHEDULED))

    fired = SpecScheduled(KEY, s.w.clock(), "arn:aws:scheduler:::schedule/crq-specs/w", "x-1")
    result = s.handle(fired)

    assert result["outcome"] == "started" and "schedule" not in result
    assert s.built == 0  # the schedule collaborators were never built
    [run] = s.w.ledger.rows.values()
    assert run.trigger_type is TriggerType.SCHEDULE
