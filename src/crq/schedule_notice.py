"""The notifications of schedule changes: SCHEDULE_SET and SCHEDULE_REMOVED (contract "1.1").

Published to the same topic as run notifications, so a spec's owners see what their upload
changed. Additive to the run contract (docs/notifications.md): its own `event` values, a
`schedule` object, and no `trigger`/`query`. Message attributes: `event`, `specName`, and for
SCHEDULE_SET the spec's `notify` attributes, so existing filter policies route them too.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from crq.notification import CONTRACT_VERSION, MAX_ATTRIBUTES, SUBJECT_LIMIT, ContractModel

SCHEDULE_SET = "SCHEDULE_SET"
SCHEDULE_REMOVED = "SCHEDULE_REMOVED"


class ScheduleNoticeSpec(ContractModel):
    name: str = Field(description="The spec's `name` (default: the file's stem).")
    source: str = Field(description="s3://bucket/key of the spec file.")
    version: str | None = Field(None, description="S3 version id of the spec object.")


class ScheduleNoticeSchedule(ContractModel):
    name: str = Field(description="The EventBridge Scheduler schedule's name.")
    group: str = Field(description="Its schedule group (the stack's).")
    expression: str | None = Field(None, description="cron(...), rate(...) or at(...).")
    timezone: str | None = Field(None, description="The IANA zone it fires in.")
    start: datetime | None = None
    end: datetime | None = None
    flexible_window_minutes: int | None = Field(None, description="Absent: fires on time.")
    next_fire_times: list[datetime] | None = Field(
        None, description="SCHEDULE_SET: the next three fire times, in the spec's zone."
    )


class ScheduleNotification(ContractModel):
    """The JSON body of a schedule change's message."""

    version: Literal["1.1"] = CONTRACT_VERSION
    event: Literal["SCHEDULE_SET", "SCHEDULE_REMOVED"]
    notification_id: str = Field(
        description="<spec state id>:<S3 sequencer>:<event>; the same on a re-publish."
    )
    time: datetime = Field(description="When crq changed the schedule.")
    spec: ScheduleNoticeSpec
    schedule: ScheduleNoticeSchedule
    reason: str = Field(description="What changed: the upload, or why the schedule was removed.")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def subject(notice: ScheduleNotification) -> str:
    word = "SCHEDULED" if notice.event == SCHEDULE_SET else "UNSCHEDULED"
    name = re.sub(r"[^\x20-\x7e]", "?", notice.spec.name).strip() or "spec"
    room = SUBJECT_LIMIT - len("crq: ") - len(word) - 1
    if len(name) > room:
        name = name[: room - 3] + "..."
    return f"crq: {name} {word}"


def attributes(notice: ScheduleNotification, notify: dict[str, str]) -> dict[str, str]:
    attrs = {"event": notice.event, "status": notice.event, "specName": notice.spec.name}
    for name, value in notify.items():
        if name not in attrs and value and len(attrs) < MAX_ATTRIBUTES:
            attrs[name] = value
    return attrs


def schedule_notification_schema() -> dict[str, Any]:
    """The JSON Schema of ScheduleNotification, for schema/notification.schema.json."""
    return ScheduleNotification.model_json_schema(by_alias=True, mode="serialization")
