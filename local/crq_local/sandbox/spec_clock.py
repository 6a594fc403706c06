"""EventBridge Scheduler for the schedules that run specs, played on the sandbox's clock.

Every poll, the clock reads the schedules on the Scheduler endpoint (the spec schedules the start
function keeps in the stack's group, and any per-spec ScheduleV2 of the template), works out
which fire times have passed since it last looked, with crq's own evaluator
(`crq.schedule`: cron/rate/at in the schedule's zone, DST as Scheduler handles it), and invokes
the target function once per fire time with the target's input, Scheduler's context attributes
filled in (`<aws.scheduler.scheduled-time>` is the fire time, not the moment of the call).

The track schedule is left to the ticker (ticker.py), which fires it every few seconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from crq.schedule import ScheduleError, build_schedule
from crq_local.sandbox.lambda_runtime import Invocation, LambdaRuntime
from crq_local.sandbox.worker import Worker

POLL_SECONDS = 1.0
_TICK = timedelta(microseconds=1)
MAX_FIRES_PER_POLL = 50  # a schedule far behind (a paused laptop) catches up, boundedly


@dataclass(frozen=True)
class Firing:
    """One fire time of one schedule, and the invocation it caused."""

    schedule: str  # group/name
    scheduled_time: datetime
    invocation: Invocation


class SpecScheduleClock(Worker):
    def __init__(
        self,
        scheduler: Any,
        runtime: LambdaRuntime,
        functions_by_name: Mapping[str, str],
        skip_functions: set[str],
        on_fire: Callable[[Firing], None],
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`functions_by_name`: function name -> logical id (the targets it may invoke);
        `skip_functions`: logical ids fired by someone else (the track function)."""
        super().__init__("spec-schedule-clock")
        self._scheduler = scheduler
        self._runtime = runtime
        self._functions = dict(functions_by_name)
        self._skip = skip_functions
        self._on_fire = on_fire
        self._poll = poll_seconds
        self._clock = clock
        self._checked: dict[str, datetime] = {}  # schedule ARN -> fire times up to here are done

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.fire_due()
            except (BotoCoreError, ClientError):
                continue  # the endpoint is stopping, or a schedule vanished mid-read

    def fire_due(self) -> list[Firing]:
        """Invoke every fire time that has passed since the last call; return them."""
        now = self._clock()
        fired: list[Firing] = []
        for summary in self._list():
            function = self._function_of(summary.get("Target", {}).get("Arn", ""))
            if function is None or function in self._skip or summary.get("State") == "DISABLED":
                continue
            try:
                schedule = self._scheduler.get_schedule(
                    GroupName=summary["GroupName"], Name=summary["Name"]
                )
            except ClientError:
                continue  # deleted since the listing
            for when in self._due(schedule, now):
                event = _target_input(schedule, when)
                invocation = self._runtime.invoke(function, event)
                firing = Firing(f"{summary['GroupName']}/{summary['Name']}", when, invocation)
                fired.append(firing)
                self._on_fire(firing)
        return fired

    def _list(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self._scheduler.list_schedules(**kwargs)
            found.extend(page.get("Schedules", []))
            if not page.get("NextToken"):
                return found
            kwargs["NextToken"] = page["NextToken"]

    def _function_of(self, arn: str) -> str | None:
        return self._functions.get(arn.rsplit(":function:", 1)[-1].split(":")[0])

    def _due(self, schedule: Mapping[str, Any], now: datetime) -> list[datetime]:
        arn = schedule["Arn"]
        created = _aware(schedule.get("CreationDate")) or now
        modified = _aware(schedule.get("LastModificationDate")) or created
        # First sight: from its creation (a rate fires when it is created, as on AWS).
        since = self._checked.get(arn, min(created, now) - _TICK)
        self._checked[arn] = now
        try:
            parsed = build_schedule(
                schedule["ScheduleExpression"],
                schedule.get("ScheduleExpressionTimezone") or "UTC",
                start=_aware(schedule.get("StartDate")),
                end=_aware(schedule.get("EndDate")),
            )
        except ScheduleError:
            return []  # Scheduler would not have accepted it; nothing fires
        # A rate counts from its start, or from when it was last set.
        fires = parsed.next_fires(since, MAX_FIRES_PER_POLL, created=modified)
        return [when for when in fires if when <= now]


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _target_input(schedule: Mapping[str, Any], when: datetime) -> Any:
    """The target's input as Scheduler delivers it for the fire time `when`."""
    text = schedule["Target"].get("Input", "{}")
    scheduled = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for attribute, value in (
        ("<aws.scheduler.scheduled-time>", scheduled),
        ("<aws.scheduler.schedule-arn>", schedule["Arn"]),
        ("<aws.scheduler.execution-id>", str(uuid.uuid4())),
        ("<aws.scheduler.attempt-number>", "1"),
    ):
        text = text.replace(attribute, value)
    return json.loads(text)
