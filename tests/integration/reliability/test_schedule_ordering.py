"""Spec schedules survive S3's delivery: duplicates, late old versions, deletes before creates.

S3 delivers events at least once and in no guaranteed order; a spec's schedule must end up as the
object's current version says, whatever order its events arrive in, with one announcement per
change. Each test delivers real events (from real puts and deletes on moto's versioned bucket) to
the real start handler in a hostile order.
"""

from __future__ import annotations

from typing import Any

import pytest
from reliability_support import FailingPublish, crq_session
from schedule_support import (
    deleted_event,
    get_schedule,
    schedule_notices,
    scheduled_spec,
    upload,
)

from crq.adapters.scheduler import SchedulerGateway
from crq.errors import PublishFailed


def expression() -> str | None:
    schedule = get_schedule()
    return None if schedule is None else str(schedule["ScheduleExpression"])


def notice_events(stack: Any, expected: int) -> list[str]:
    found = schedule_notices(stack.notifications(expected, timeout=1 if expected else 0.2))
    return [n["body"]["event"] for n in found]


def test_a_duplicate_event_changes_and_announces_nothing(
    pipeline_stack: Any, functions: Any
) -> None:
    event = upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)"))

    assert functions.start(event)["outcome"] == "set"
    assert functions.start(event)["outcome"] == "duplicate"

    assert expression() == "cron(0 6 ? * MON *)"
    assert notice_events(pipeline_stack, 1) == ["SCHEDULE_SET"]


def test_a_late_old_version_does_not_bring_its_schedule_back(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given two uploads, the second changing the schedule
    old = upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)"))
    new = upload(pipeline_stack, scheduled_spec("cron(0 7 ? * TUE *)"))

    # When the newer event arrives first and the older one late
    assert functions.start(new)["outcome"] == "set"
    assert functions.start(old)["outcome"] == "stale"

    # Then the schedule is the newer version's, announced once
    assert expression() == "cron(0 7 ? * TUE *)"
    assert notice_events(pipeline_stack, 1) == ["SCHEDULE_SET"]


def test_a_late_old_version_cannot_schedule_a_spec_that_no_longer_has_one(
    pipeline_stack: Any, functions: Any
) -> None:
    # The newer version has no schedule (and so wrote no record): the late old one must not
    # create a schedule the current file does not ask for.
    old = upload(pipeline_stack, scheduled_spec("rate(1 day)"))
    new = upload(pipeline_stack, scheduled_spec(None))

    assert functions.start(new)["outcome"] == "started"
    late = functions.start(old)

    assert late["outcome"] == "superseded"
    assert expression() is None
    assert notice_events(pipeline_stack, 0) == []


def test_a_delete_delivered_before_its_create_leaves_no_schedule(
    pipeline_stack: Any, functions: Any
) -> None:
    created = upload(pipeline_stack, scheduled_spec("rate(1 day)"))
    deleted = deleted_event(pipeline_stack)

    assert functions.start(deleted)["outcome"] == "ignored"  # nothing was scheduled yet
    assert functions.start(created)["outcome"] == "superseded"

    assert expression() is None
    assert pipeline_stack.engine.received == []
    assert notice_events(pipeline_stack, 0) == []


def test_a_delete_before_a_late_edit_removes_the_schedule_for_good(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given a scheduled spec, then an edit and a delete whose events arrive delete first
    functions.start(upload(pipeline_stack, scheduled_spec("rate(1 day)")))
    edited = upload(pipeline_stack, scheduled_spec("rate(2 days)"))
    deleted = deleted_event(pipeline_stack)

    assert functions.start(deleted)["outcome"] == "removed"
    assert functions.start(edited)["outcome"] == "stale"

    assert expression() is None
    assert notice_events(pipeline_stack, 2) == ["SCHEDULE_SET", "SCHEDULE_REMOVED"]


def test_a_failed_announcement_is_finished_by_the_retry(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given SNS refusing the first publish
    crq_session().events.register("before-parameter-build.sns.Publish", FailingPublish(times=1))
    event = upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)"))

    # When the invocation fails, and Lambda retries the event
    with pytest.raises(PublishFailed):
        functions.start(event)
    assert functions.start(event)["outcome"] == "set"

    # Then the schedule is set and announced once
    assert expression() == "cron(0 6 ? * MON *)"
    assert notice_events(pipeline_stack, 1) == ["SCHEDULE_SET"]
    assert functions.start(event)["outcome"] == "duplicate"


def test_an_older_event_applied_after_a_newer_one_is_corrected(
    pipeline_stack: Any, functions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two invocations racing: the older one's Scheduler call lands after the newer one's
    real_put = SchedulerGateway.put
    newer: list[dict[str, Any]] = []

    def put_racing(self: SchedulerGateway, schedule: Any) -> None:
        if not newer:
            newer.append(upload(pipeline_stack, scheduled_spec("cron(0 7 ? * TUE *)")))
            assert functions.start(newer[0])["outcome"] == "set"  # runs to the end meanwhile
        real_put(self, schedule)

    monkeypatch.setattr(SchedulerGateway, "put", put_racing)
    older = upload(pipeline_stack, scheduled_spec("cron(0 6 ? * MON *)"))

    # When the older invocation finishes last
    assert functions.start(older)["outcome"] == "superseded"

    # Then the schedule is the newer version's, announced once (by the newer invocation)
    assert expression() == "cron(0 7 ? * TUE *)"
    assert notice_events(pipeline_stack, 1) == ["SCHEDULE_SET"]


def test_deleting_an_old_version_keeps_the_current_versions_schedule(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given a spec uploaded twice, the second version's schedule in place
    first = upload(pipeline_stack, scheduled_spec("rate(1 day)"))
    functions.start(first)
    functions.start(upload(pipeline_stack, scheduled_spec("cron(0 7 ? * TUE *)")))

    # When someone deletes the first version for good (the object stays)
    old_version = first["detail"]["object"]["version-id"]
    event = deleted_event(pipeline_stack, version_id=old_version)

    # Then the current version's schedule stays
    assert functions.start(event)["outcome"] == "unchanged"
    assert expression() == "cron(0 7 ? * TUE *)"
    assert notice_events(pipeline_stack, 2) == ["SCHEDULE_SET", "SCHEDULE_SET"]
