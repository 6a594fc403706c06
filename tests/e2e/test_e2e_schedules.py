"""A user schedules a spec in the sandbox: the schedule is set, fires on the sandbox's clock in the
spec's zone, and the run it starts is notified like any other."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from e2e_support import EXAMPLE_SPECS, SandboxProcess, Subscriber

from crq.schedule_state import schedule_name

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-schedules")]

KEY = "specs/scheduled/channel-mix.yaml"
ZONE = "America/New_York"


def test_a_scheduled_spec_fires_at_its_time_and_notifies(
    sandbox: SandboxProcess, subscriber: Subscriber
) -> None:
    # Given a spec scheduled once, a few seconds from now on New York's clock
    fire_at = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
    local = fire_at.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M:%S")
    body = (EXAMPLE_SPECS / "channel-mix.yaml").read_text() + (
        f"schedule: at({local})\ntimezone: {ZONE}\n"
    )

    # When the user uploads it
    sandbox.client("s3").put_object(
        Bucket=sandbox.exports["CRQ_SPECS_BUCKET"], Key=KEY, Body=body.encode()
    )

    # Then the schedule is announced with its fire time in the spec's zone
    (schedule_set,) = subscriber.wait_for(lambda n: n.spec_key == KEY and n.event == "SCHEDULE_SET")
    assert schedule_set.body["schedule"]["timezone"] == ZONE
    assert [datetime.fromisoformat(t) for t in schedule_set.body["schedule"]["nextFireTimes"]] == [
        fire_at
    ]
    # ... nothing ran at upload (the schedule had not fired when it was announced)
    assert not [n for n in subscriber.received if n.spec_key == KEY and n.query_id]

    # And when its time comes, it runs as scheduled at that time
    (ended,) = subscriber.wait_for(lambda n: n.spec_key == KEY and n.event == "QUERY_SUCCEEDED")
    assert ended.body["trigger"] == {
        "type": "schedule",
        "time": fire_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert ended.objects  # the results are where the spec said
    # ... the sandbox said the schedule fired
    deadline = time.monotonic() + 10
    while not any("fired for" in line for line in sandbox.stdout) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(
        "fired for " + fire_at.strftime("%Y-%m-%dT%H:%M:%SZ") in line for line in sandbox.stdout
    )


def test_deleting_a_scheduled_spec_removes_its_schedule(
    sandbox: SandboxProcess, subscriber: Subscriber
) -> None:
    # Given a spec on a weekly schedule
    key = "specs/scheduled/weekly.yaml"
    body = (EXAMPLE_SPECS / "weekly-channel-mix.yaml").read_bytes()
    s3 = sandbox.client("s3")
    s3.put_object(Bucket=sandbox.exports["CRQ_SPECS_BUCKET"], Key=key, Body=body)
    subscriber.wait_for(lambda n: n.spec_key == key and n.event == "SCHEDULE_SET")

    # When the user deletes it (`aws s3 rm`: a delete marker in the versioned bucket)
    s3.delete_object(Bucket=sandbox.exports["CRQ_SPECS_BUCKET"], Key=key)

    # Then its schedule is removed and the owners are told
    (removed,) = subscriber.wait_for(lambda n: n.spec_key == key and n.event == "SCHEDULE_REMOVED")
    assert removed.body["reason"] == "the spec file was deleted"
    group = sandbox.exports["CRQ_SCHEDULE_GROUP"]
    left = sandbox.client("scheduler").list_schedules(GroupName=group)["Schedules"]
    assert schedule_name(key) not in {s["Name"] for s in left}
