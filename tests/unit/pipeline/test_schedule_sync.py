"""The schedule use case with in-memory collaborators: what runs now, what is set, what is said."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pipeline_fakes import FakePublisher, FakeScheduler, FakeStates

from crq.errors import ConfigError, SpecUnreadable
from crq.ports import SpecObject
from crq.schedule_state import (
    ScheduleDeps,
    state_id,
)
from crq.schedule_sync import sync_schedule
from crq.settings import Settings
from crq.spec.names import default_name
from crq.triggers import SpecDeleted, SpecUploaded

NOW = datetime(2026, 3, 25, 9, 0, tzinfo=UTC)  # a Wednesday
BUCKET, KEY = "specs-bucket", "specs/weekly.yaml"
SPEC = """\
membershipIdentifier: 6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10
sqlParameters: {queryString: "SELECT 1"}
"""


@dataclass
class FakeSpecs:
    versions: dict[str, bytes] = field(default_factory=dict)
    current: str | None = None

    def put(self, version: str, body: str) -> None:
        self.versions[version] = body.encode()
        self.current = version

    def get_spec(self, bucket: str, key: str, version_id: str | None) -> SpecObject:
        version = version_id or self.current
        if version is None or version not in self.versions:
            raise SpecUnreadable(f"s3://{bucket}/{key}", "no such object")
        data = self.versions[version]
        return SpecObject(data, len(data), version, f"etag-{version}")


SETTINGS = Settings(
    table_name="t",
    topic_arn="arn:aws:sns:us-east-1:1:t",
    specs_bucket=BUCKET,
    service_name="crq",
    metrics_namespace="crq",
    schedule_group="group",
    scheduler_role_arn="arn:aws:iam::1:role/r",
    schedule_target_arn="arn:aws:lambda:us-east-1:1:function:start",
)


@pytest.fixture
def world() -> tuple[ScheduleDeps, FakeSpecs, FakeScheduler, FakePublisher]:
    specs, scheduler, publisher = FakeSpecs(), FakeScheduler(), FakePublisher()
    deps = ScheduleDeps(SETTINGS, specs, FakeStates(), scheduler, publisher, clock=lambda: NOW)
    return deps, specs, scheduler, publisher


_counter = iter(range(10, 10_000))


def uploaded(specs: FakeSpecs, body: str) -> SpecUploaded:
    version = f"v{next(_counter)}"
    specs.put(version, body)
    return SpecUploaded(BUCKET, KEY, version, None, None, NOW, "e", f"{next(_counter):X}")


def test_an_unscheduled_spec_runs_now_and_touches_nothing(world: Any) -> None:
    deps, specs, scheduler, publisher = world

    result = sync_schedule(uploaded(specs, SPEC), deps)

    assert (result.outcome, result.run_now) == ("unscheduled", True)
    assert scheduler.calls == 0 and publisher.messages == [] and deps.states.records == {}


def test_deferred_an_unscheduled_upload_reads_no_record_and_hands_on_its_check_and_spec(
    world: Any,
) -> None:
    # Given a record saying the key had a schedule (the sync must not read it when deferred)
    deps, specs, scheduler, publisher = world
    sync_schedule(uploaded(specs, SPEC + "schedule: rate(1 day)\n"), deps)
    reads: list[str] = []
    deps.states.get = lambda state_id: reads.append(state_id)  # type: ignore[method-assign]

    # When an unscheduled version is uploaded and the check is deferred to the run's write
    event = uploaded(specs, SPEC)
    result = sync_schedule(event, deps, defer_unscheduled=True)

    # Then nothing was read or changed here; the result names the record and the version read
    assert (result.outcome, result.run_now) == ("unscheduled", True)
    assert reads == [] and len(scheduler.schedules) == 1 and len(publisher.messages) == 1
    assert result.unchecked_record == state_id(BUCKET, KEY)
    assert result.spec_object is not None and result.spec_object.version_id == event.version_id
    assert "unchecked_record" not in result.as_dict() and "spec_object" not in result.as_dict()


def test_a_scheduled_spec_is_set_announced_with_three_local_fire_times_and_not_run(
    world: Any,
) -> None:
    deps, specs, scheduler, publisher = world
    body = SPEC + "schedule: cron(0 6 ? * MON *)\ntimezone: Europe/Berlin\nnotify: {team: a}\n"

    result = sync_schedule(uploaded(specs, body), deps)

    assert (result.outcome, result.run_now) == ("set", False)
    [schedule] = scheduler.schedules.values()
    assert (schedule.expression, schedule.timezone, schedule.group) == (
        "cron(0 6 ? * MON *)",
        "Europe/Berlin",
        "group",
    )
    [(subject, body_sent, attributes)] = publisher.received()
    assert subject == "crq: weekly SCHEDULED"
    assert body_sent["schedule"]["nextFireTimes"] == [
        "2026-03-30T06:00:00+02:00",
        "2026-04-06T06:00:00+02:00",
        "2026-04-13T06:00:00+02:00",
    ]
    assert attributes == {
        "event": "SCHEDULE_SET",
        "status": "SCHEDULE_SET",
        "specName": "weekly",
        "team": "a",
    }


def test_a_spec_without_a_name_is_announced_under_the_name_its_runs_get(world: Any) -> None:
    # Given a stack whose specs live under `incoming/`, and a spec there in a team folder
    deps, specs, _, publisher = world
    deps = replace(deps, settings=SETTINGS.model_copy(update={"specs_prefix": "incoming/"}))
    version = f"v{next(_counter)}"
    specs.put(version, SPEC + "schedule: cron(0 6 ? * MON *)\n")
    key = "incoming/team-a/weekly.yaml"

    # When it is uploaded
    sync_schedule(SpecUploaded(BUCKET, key, version, None, None, NOW, "e", "A"), deps)

    # Then it is announced by the start function's default name: the key under the prefix
    [(subject, _, attributes)] = publisher.received()
    assert attributes["specName"] == default_name(key, "incoming/") == "team-a/weekly"
    assert subject == "crq: team-a/weekly SCHEDULED"


def test_run_on_upload_runs_now_too(world: Any) -> None:
    deps, specs, _, _ = world
    body = SPEC + "schedule: {expression: 'cron(0 6 ? * MON *)', runOnUpload: true}\n"

    assert sync_schedule(uploaded(specs, body), deps).run_now is True


def test_an_invalid_spec_goes_on_to_be_rejected(world: Any) -> None:
    deps, specs, scheduler, _ = world

    result = sync_schedule(uploaded(specs, SPEC + "schedule: weekly\n"), deps)

    assert (result.outcome, result.run_now) == ("unscheduled", True)
    assert scheduler.calls == 0


def test_a_deletion_never_runs_and_removes_what_was_set(world: Any) -> None:
    deps, specs, scheduler, publisher = world
    sync_schedule(uploaded(specs, SPEC + "schedule: rate(1 day)\n"), deps)
    specs.current = None  # a delete marker

    result = sync_schedule(
        SpecDeleted(BUCKET, KEY, "marker", NOW, "e", f"{next(_counter):X}"), deps
    )

    assert (result.outcome, result.run_now) == ("removed", False)
    assert scheduler.schedules == {}
    assert [m[1]["event"] for m in publisher.received()] == ["SCHEDULE_SET", "SCHEDULE_REMOVED"]


def test_a_stack_without_its_schedule_settings_fails_by_name(world: Any) -> None:
    deps, specs, _, _ = world
    bare = ScheduleDeps(
        SETTINGS.model_copy(update={"schedule_group": "", "scheduler_role_arn": ""}),
        specs,
        deps.states,
        deps.scheduler,
        deps.publisher,
        clock=lambda: NOW,
    )

    with pytest.raises(ConfigError, match="CRQ_SCHEDULE_GROUP, CRQ_SCHEDULER_ROLE_ARN not set"):
        sync_schedule(uploaded(specs, SPEC + "schedule: rate(1 day)\n"), bare)


def test_schedule_notices_carry_the_contract_version() -> None:
    from crq.notification import CONTRACT_VERSION
    from crq.schedule_notice import ScheduleNotification

    assert ScheduleNotification.model_fields["version"].default == CONTRACT_VERSION
