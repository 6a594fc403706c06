"""EventBridge Scheduler: the spec-declared schedules in the stack's schedule group."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from crq.adapters.aws_errors import error_code
from crq.schedule_state import ManagedSchedule

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

# As the template's per-spec ScheduleV2 events had them: a start that Lambda refuses is retried
# for an hour, then lands in the events dead-letter queue.
RETRY_POLICY = {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600}
NOT_FOUND = "ResourceNotFoundException"


class SchedulerGateway:
    def __init__(self, client: EventBridgeSchedulerClient) -> None:
        self._client = client

    def put(self, schedule: ManagedSchedule) -> None:
        request = _request(schedule)
        try:
            self._client.update_schedule(**request)
            return
        except ClientError as exc:
            if error_code(exc) != NOT_FOUND:
                raise
        try:
            self._client.create_schedule(**request)
        except ClientError as exc:
            if error_code(exc) != "ConflictException":
                raise
            self._client.update_schedule(**request)  # created meanwhile by another invocation

    def delete(self, group: str, name: str) -> None:
        try:
            self._client.delete_schedule(GroupName=group, Name=name)
        except ClientError as exc:
            if error_code(exc) != NOT_FOUND:
                raise

    def list(self, group: str) -> list[ManagedSchedule]:
        """Every schedule of the group (for `crq schedules`; the functions never list)."""
        names: list[str] = []
        for page in self._client.get_paginator("list_schedules").paginate(GroupName=group):
            names.extend(summary["Name"] for summary in page.get("Schedules", []))
        found = (self.get(group, name) for name in names)
        return [schedule for schedule in found if schedule is not None]

    def get(self, group: str, name: str) -> ManagedSchedule | None:
        try:
            found = self._client.get_schedule(GroupName=group, Name=name)
        except ClientError as exc:
            if error_code(exc) == NOT_FOUND:
                return None
            raise
        target = found["Target"]
        window = found.get("FlexibleTimeWindow") or {}
        return ManagedSchedule(
            name=found["Name"],
            group=found.get("GroupName") or group,
            expression=found["ScheduleExpression"],
            timezone=found.get("ScheduleExpressionTimezone") or "UTC",
            start=found.get("StartDate"),
            end=found.get("EndDate"),
            flexible_window_minutes=window.get("MaximumWindowInMinutes")
            if window.get("Mode") == "FLEXIBLE"
            else None,
            target_arn=target["Arn"],
            role_arn=target["RoleArn"],
            dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
            input=target.get("Input") or "",
        )


def _request(schedule: ManagedSchedule) -> dict[str, Any]:
    target: dict[str, Any] = {
        "Arn": schedule.target_arn,
        "RoleArn": schedule.role_arn,
        "Input": schedule.input,
        "RetryPolicy": dict(RETRY_POLICY),
    }
    if schedule.dead_letter_arn:
        target["DeadLetterConfig"] = {"Arn": schedule.dead_letter_arn}
    window: dict[str, Any] = {"Mode": "OFF"}
    if schedule.flexible_window_minutes:
        window = {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": schedule.flexible_window_minutes}
    request: dict[str, Any] = {
        "Name": schedule.name,
        "GroupName": schedule.group,
        "ScheduleExpression": schedule.expression,
        "ScheduleExpressionTimezone": schedule.timezone,
        "FlexibleTimeWindow": window,
        "Target": target,
        "State": "ENABLED",
        "Description": _description(schedule),
    }
    if schedule.start is not None:
        request["StartDate"] = schedule.start
    if schedule.end is not None:
        request["EndDate"] = schedule.end
    return request


def _description(schedule: ManagedSchedule) -> str:
    spec_key = json.loads(schedule.input).get("specKey", "")
    return f"crq: {spec_key}"[:512]
