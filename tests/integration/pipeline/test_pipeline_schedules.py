"""Spec-declared schedules through the real start handler, against moto's EventBridge Scheduler.

A user uploads a spec with `schedule:`; crq creates its schedule (what `aws scheduler
get-schedule` shows), announces it, and starts nothing. Editing, removing `schedule:` and deleting
the file change or remove it. When the schedule fires, the start function runs the spec at the
scheduled time, rendered in the spec's zone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from schedule_support import (
    KEY,
    SCHEDULE_GROUP,
    deleted_event,
    fired,
    get_schedule,
    schedule_notices,
    scheduled_spec,
    upload,
)

from crq.schedule_state import schedule_name

ROOT = Path(__file__).resolve().parents[3]
NOTIFICATION_SCHEMA = json.loads((ROOT / "schema" / "notification.schema.json").read_text())
START_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:crq-test-start"


def runs(stack: Any) -> list[dict[str, Any]]:
    return [item for item in stack.items() if not item["runId"].startswith("spec:")]


def test_an_uploaded_schedule_is_created_announced_and_runs_nothing(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given a spec that runs every Monday 06:00 Berlin time
    body = scheduled_spec("cron(0 6 ? * MON *)", timezone="Europe/Berlin")

    # When it is uploaded
    result = functions.start(upload(pipeline_stack, body))

    # Then its schedule exists as the user asked, targeting the start function
    assert result["outcome"] == "set" and result["schedule"] == schedule_name(KEY)
    schedule = get_schedule()
    assert schedule is not None
    assert schedule["Name"] == schedule_name(KEY)
    assert schedule["GroupName"] == SCHEDULE_GROUP
    assert schedule["ScheduleExpression"] == "cron(0 6 ? * MON *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"] == START_FUNCTION_ARN
    assert target["RoleArn"].endswith(":role/crq-test-scheduler-role")
    assert target["DeadLetterConfig"]["Arn"].endswith(":crq-test-events-dead-letter-queue")
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600}
    assert json.loads(target["Input"]) == {
        "specKey": KEY,
        "scheduledTime": "<aws.scheduler.scheduled-time>",
        "scheduleArn": "<aws.scheduler.schedule-arn>",
        "executionId": "<aws.scheduler.execution-id>",
    }
    # ... no query ran, no run was recorded
    assert pipeline_stack.engine.received == [] and runs(pipeline_stack) == []
    # ... and the owners were told, with the next three Mondays at 06:00 in Berlin
    [notice] = pipeline_stack.notifications(1)
    jsonschema.validate(notice["body"], NOTIFICATION_SCHEMA)
    assert notice["body"]["event"] == "SCHEDULE_SET"
    assert notice["subject"] == "crq: weekly-overlap SCHEDULED"
    assert notice["attributes"]["team"] == "media"
    assert notice["attributes"]["event"] == "SCHEDULE_SET"
    fires = notice["body"]["schedule"]["nextFireTimes"]
    assert len(fires) == 3
    assert all(t.endswith(("T06:00:00+01:00", "T06:00:00+02:00")) for t in fires)


def test_editing_the_spec_updates_the_schedule(pipeline_stack: Any, functions: Any) -> None:
    functions.start(upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)")))
    body = scheduled_spec(
        "schedule:\n  expression: rate(2 hours)\n  flexibleWindowMinutes: 10",
        timezone="America/New_York",
    )

    result = functions.start(upload(pipeline_stack, body))

    assert result["outcome"] == "set"
    schedule = get_schedule()
    assert schedule is not None
    assert schedule["ScheduleExpression"] == "rate(2 hours)"
    assert schedule["ScheduleExpressionTimezone"] == "America/New_York"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 10}
    events = [n["body"]["event"] for n in pipeline_stack.notifications(2)]
    assert events == ["SCHEDULE_SET", "SCHEDULE_SET"]


def test_uploading_the_same_schedule_again_changes_and_announces_nothing(
    pipeline_stack: Any, functions: Any
) -> None:
    functions.start(upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)")))
    edited = scheduled_spec("cron(0 6 ? * MON *)", extra="maxAttempts: 3\n")

    assert functions.start(upload(pipeline_stack, edited))["outcome"] == "unchanged"
    assert len(pipeline_stack.notifications(1, timeout=0.5)) == 1


def test_removing_the_schedule_key_removes_the_schedule_and_runs_the_spec(
    pipeline_stack: Any, functions: Any
) -> None:
    functions.start(upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)")))

    result = functions.start(upload(pipeline_stack, scheduled_spec(None)))

    assert get_schedule() is None
    # An unscheduled spec runs at upload, as it always did.
    assert result["outcome"] == "started" and result["schedule"] == "removed"
    assert len(pipeline_stack.engine.received) == 1
    notices = schedule_notices(pipeline_stack.notifications(2))
    assert [n["body"]["event"] for n in notices] == ["SCHEDULE_SET", "SCHEDULE_REMOVED"]
    assert notices[1]["subject"] == "crq: weekly-overlap UNSCHEDULED"
    assert notices[1]["body"]["reason"] == "the spec has no schedule"


def test_deleting_the_file_removes_the_schedule(pipeline_stack: Any, functions: Any) -> None:
    functions.start(upload(pipeline_stack, scheduled_spec("rate(1 day)")))

    result = functions.start(deleted_event(pipeline_stack))

    assert result["outcome"] == "removed"
    assert get_schedule() is None
    notices = schedule_notices(pipeline_stack.notifications(2))
    assert notices[-1]["body"]["event"] == "SCHEDULE_REMOVED"
    assert notices[-1]["body"]["reason"] == "the spec file was deleted"
    jsonschema.validate(notices[-1]["body"], NOTIFICATION_SCHEMA)
    assert runs(pipeline_stack) == []


def test_run_on_upload_sets_the_schedule_and_runs_once_now(
    pipeline_stack: Any, functions: Any
) -> None:
    body = scheduled_spec("schedule:\n  expression: rate(1 day)\n  runOnUpload: true")

    result = functions.start(upload(pipeline_stack, body))

    assert result["outcome"] == "started" and result["schedule"] == "set"
    assert get_schedule() is not None
    assert len(pipeline_stack.engine.received) == 1


def test_an_invalid_upload_is_rejected_and_takes_its_schedule_away(
    pipeline_stack: Any, functions: Any
) -> None:
    functions.start(upload(pipeline_stack, scheduled_spec("rate(1 day)")))

    result = functions.start(upload(pipeline_stack, scheduled_spec("rate(1 days)")))

    assert result["outcome"] == "rejected" and result["schedule"] == "removed"
    assert get_schedule() is None
    events = [n["body"]["event"] for n in pipeline_stack.notifications(3)]
    assert sorted(events) == ["SCHEDULE_REMOVED", "SCHEDULE_SET", "SPEC_REJECTED"]
    [rejected] = [
        n for n in pipeline_stack.notifications(3) if n["body"]["event"] == "SPEC_REJECTED"
    ]
    assert rejected["body"]["errors"] == [
        {"field": "schedule", "message": "write rate(1 day): a value of 1 takes the singular unit"}
    ]
    assert pipeline_stack.engine.received == []


def test_a_schedule_firing_too_often_is_rejected_naming_the_stack_limit(
    pipeline_stack: Any, functions: Any
) -> None:
    result = functions.start(upload(pipeline_stack, scheduled_spec("rate(5 minutes)")))

    assert result["outcome"] == "rejected"
    assert get_schedule() is None
    [rejected] = pipeline_stack.notifications(1)
    [error] = rejected["body"]["errors"]
    assert error["field"] == "schedule"
    assert "MinScheduleIntervalMinutes" in error["message"]
    assert pipeline_stack.engine.received == []


def test_when_the_schedule_fires_the_spec_runs_at_that_time_in_its_zone(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given a spec scheduled at 00:30 every Monday, Berlin time
    functions.start(
        upload(pipeline_stack, scheduled_spec("cron(30 0 ? * MON *)", timezone="Europe/Berlin"))
    )

    # When Scheduler fires it for Monday 2026-03-30 00:30 CEST (Sunday 22:30 UTC)
    result = functions.start(fired(KEY, "2026-03-29T22:30:00Z"))

    # Then the query runs, its result prefix dated on Berlin's calendar
    assert result["outcome"] == "started"
    [received] = pipeline_stack.engine.received
    assert received.request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"] == (
        "weekly/2026-03-30/"
    )
    # And a second delivery of the same firing starts nothing more
    assert functions.start(fired(KEY, "2026-03-29T22:30:00Z"))["outcome"] == "in_progress"
    assert len(pipeline_stack.engine.received) == 1


def test_two_versions_with_one_sequencer_are_told_apart(
    pipeline_stack: Any, functions: Any
) -> None:
    # moto (the sandbox's S3) gives every event the same sequencer; S3 never does.
    first = upload(pipeline_stack, scheduled_spec("rate(1 day)"))
    assert functions.start(first)["outcome"] == "set"
    second = upload(pipeline_stack, scheduled_spec("rate(2 days)"))
    second["detail"]["object"]["sequencer"] = first["detail"]["object"]["sequencer"]

    assert functions.start(second)["outcome"] == "set"
    assert functions.start(second)["outcome"] == "duplicate"

    schedule = get_schedule()
    assert schedule is not None and schedule["ScheduleExpression"] == "rate(2 days)"


def test_a_rate_starts_one_interval_after_upload_and_keeps_its_anchor(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given a spec on rate(1 day) uploaded (the sample event's time: 2026-01-05T06:00:00Z)
    functions.start(upload(pipeline_stack, scheduled_spec("rate(1 day)")))
    schedule = get_schedule()
    assert schedule is not None
    # Scheduler would start a rate without a start date at once, running the spec at upload
    first_start = schedule["StartDate"]
    assert first_start.isoformat().startswith("2026-01-06T06:00:00")

    # When the spec is edited elsewhere and uploaded later, its schedule unchanged
    edited = upload(pipeline_stack, scheduled_spec("rate(1 day)", extra="maxAttempts: 3\n"))
    edited["time"] = "2026-01-07T09:30:00Z"

    # Then the rate keeps counting from where it started, and nothing is announced
    assert functions.start(edited)["outcome"] == "unchanged"
    schedule = get_schedule()
    assert schedule is not None and schedule["StartDate"] == first_start
    assert len(schedule_notices(pipeline_stack.notifications(1, timeout=0.5))) == 1


def test_an_at_time_already_passed_sets_no_schedule_and_runs_nothing(
    pipeline_stack: Any, functions: Any
) -> None:
    # The sample upload happens at 2026-01-05T06:00:00Z; the spec's one-off was the day before.
    result = functions.start(upload(pipeline_stack, scheduled_spec("at(2026-01-04T06:00:00)")))

    assert result["outcome"] == "unscheduled"
    assert get_schedule() is None
    assert pipeline_stack.engine.received == []
