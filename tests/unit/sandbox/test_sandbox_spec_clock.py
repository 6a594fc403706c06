"""The sandbox's clock for spec schedules: each fire time once, in the schedule's zone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crq_local.sandbox.lambda_runtime import Invocation
from crq_local.sandbox.spec_clock import SpecScheduleClock

FUNCTION_ARN = "arn:aws:lambda:us-east-1:111111111111:function:crq-sandbox-start"
TRACK_ARN = "arn:aws:lambda:us-east-1:111111111111:function:crq-sandbox-track"
INPUT = json.dumps(
    {
        "specKey": "specs/x.yaml",
        "scheduledTime": "<aws.scheduler.scheduled-time>",
        "scheduleArn": "<aws.scheduler.schedule-arn>",
    }
)


@dataclass
class FakeScheduler:
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, expression: str, zone: str, created: datetime, **extra: Any) -> None:
        self.schedules[name] = {
            "Arn": f"arn:aws:scheduler:us-east-1:111111111111:schedule/g/{name}",
            "Name": name,
            "GroupName": "g",
            "State": "ENABLED",
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": zone,
            "CreationDate": created,
            "LastModificationDate": created,
            "Target": {"Arn": FUNCTION_ARN, "Input": INPUT},
            **extra,
        }

    def list_schedules(self, **_: Any) -> dict[str, Any]:
        return {"Schedules": [dict(s) for s in self.schedules.values()]}

    def get_schedule(self, GroupName: str, Name: str) -> dict[str, Any]:
        return self.schedules[Name]


@dataclass
class FakeRuntime:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def invoke(self, function: str, event: Any) -> Invocation:
        self.calls.append((function, event))
        return Invocation(function, "r", True, 1.0, result={"outcome": "started"})


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def clock_for(scheduler: FakeScheduler, runtime: FakeRuntime, clock: Clock) -> SpecScheduleClock:
    names = {"crq-sandbox-start": "StartFunction", "crq-sandbox-track": "TrackFunction"}
    return SpecScheduleClock(
        scheduler,
        runtime,
        names,
        {"TrackFunction"},
        lambda _: None,
        clock=clock,  # type: ignore[arg-type]
    )


def scheduled_times(runtime: FakeRuntime) -> list[str]:
    return [event["scheduledTime"] for _, event in runtime.calls]


def test_a_cron_fires_at_its_local_times_across_a_dst_change_each_once() -> None:
    # Given a daily 06:00 Berlin schedule created before the spring change
    scheduler, runtime = FakeScheduler(), FakeRuntime()
    clock = Clock(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    scheduler.add("daily", "cron(0 6 * * ? *)", "Europe/Berlin", clock.now)
    spec_clock = clock_for(scheduler, runtime, clock)

    # When the clock looks, then again three days later, then once more at the same moment
    spec_clock.fire_due()
    clock.now += timedelta(days=3)
    spec_clock.fire_due()
    spec_clock.fire_due()

    # Then each morning fired once, at 06:00 local (CET, then CEST)
    assert scheduled_times(runtime) == [
        "2026-03-28T05:00:00Z",
        "2026-03-29T04:00:00Z",
        "2026-03-30T04:00:00Z",
    ]
    function, event = runtime.calls[0]
    assert function == "StartFunction"
    assert event["specKey"] == "specs/x.yaml"
    assert event["scheduleArn"].endswith("/g/daily")


def test_an_at_fires_once_when_its_time_comes() -> None:
    scheduler, runtime = FakeScheduler(), FakeRuntime()
    clock = Clock(datetime(2026, 7, 1, 12, 59, 50, tzinfo=UTC))
    scheduler.add("once", "at(2026-07-01T09:00:00)", "America/New_York", clock.now)
    spec_clock = clock_for(scheduler, runtime, clock)

    spec_clock.fire_due()
    assert runtime.calls == []
    clock.now += timedelta(seconds=15)
    spec_clock.fire_due()
    clock.now += timedelta(hours=1)
    spec_clock.fire_due()

    assert scheduled_times(runtime) == ["2026-07-01T13:00:00Z"]


def test_disabled_schedules_and_the_track_schedule_are_left_alone() -> None:
    scheduler, runtime = FakeScheduler(), FakeRuntime()
    clock = Clock(datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    scheduler.add("off", "rate(1 minute)", "UTC", clock.now, State="DISABLED")
    scheduler.add("track", "rate(1 minute)", "UTC", clock.now)
    scheduler.schedules["track"]["Target"] = {"Arn": TRACK_ARN, "Input": "{}"}
    spec_clock = clock_for(scheduler, runtime, clock)

    clock.now += timedelta(minutes=5)
    spec_clock.fire_due()

    assert runtime.calls == []
