"""The events the functions receive, as typed models (Powertools parser), and what they mean.

Start receives an S3 `Object Created` event via EventBridge, or a Scheduler input naming a spec.
Track receives a Scheduler tick (anything that is not an `aws.cleanrooms` event), or a Clean Rooms
status event, which is only a wake-up: its detail is not documented by AWS and is never trusted
for the outcome (the query is re-read).

A payload that does not parse raises (pydantic's ValidationError), so a malformed event fails the
invocation and ends in the dead-letter queue after Lambda's retries, instead of vanishing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import parse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class SchedulerInput(BaseModel):
    """The input of a spec's schedule (template: ScheduleV2 `Input`)."""

    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    spec_key: str = Field(alias="specKey", min_length=1, max_length=1024)
    scheduled_time: AwareDatetime = Field(alias="scheduledTime")
    schedule_arn: str | None = Field(None, alias="scheduleArn")
    execution_id: str | None = Field(None, alias="executionId")


class TrackTick(BaseModel):
    """The track schedule's input: `{"source": "crq.track"}`."""

    model_config = ConfigDict(defer_build=True)

    source: str = "crq.track"


class CleanRoomsDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    membership_id: str | None = Field(None, alias="membershipId")
    protected_query_id: str | None = Field(None, alias="protectedQueryId")
    status: str | None = None


@functools.cache
def _cleanrooms_event() -> type[BaseModel]:
    """The model of an aws.cleanrooms event, made on first use: Powertools' event models cost
    milliseconds to import, which a track tick (the common cold start) never needs."""
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

    class CleanRoomsEvent(EventBridgeModel):  # type: ignore[misc]
        model_config = ConfigDict(defer_build=True)

        source: Literal["aws.cleanrooms"]
        detail: CleanRoomsDetail
        # Unused by crq, and missing from events moto's EventBridge hands to its targets (the
        # sandbox's path): a wake-up must not fail on it.
        account: str | None = None  # type: ignore[assignment]

    return CleanRoomsEvent


# What the start use case is asked to do.
@dataclass(frozen=True)
class SpecUploaded:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    time: datetime
    event_id: str
    sequencer: str | None = None  # S3's order of events on one key (docs/design.md)


@dataclass(frozen=True)
class SpecDeleted:
    """An object under the specs prefix was deleted (its schedule, if any, goes with it)."""

    bucket: str
    key: str
    version_id: str | None
    time: datetime
    event_id: str
    sequencer: str | None


@dataclass(frozen=True)
class SpecScheduled:
    spec_key: str
    scheduled_time: datetime
    schedule_arn: str | None
    execution_id: str | None


@dataclass(frozen=True)
class NotOurs:
    """An event the start function was sent but has nothing to do with (e.g. a delete)."""

    reason: str


StartTrigger = SpecUploaded | SpecScheduled | NotOurs


# What the track use case is asked to do.
@dataclass(frozen=True)
class TrackAll:
    reason: str


@dataclass(frozen=True)
class QueryChanged:
    membership_id: str
    query_id: str
    status: str | None


TrackRequest = TrackAll | QueryChanged


def parse_start_event(event: Mapping[str, Any]) -> StartTrigger | SpecDeleted:
    if "specKey" in event:
        scheduled = parse(event=dict(event), model=SchedulerInput)
        return SpecScheduled(
            spec_key=scheduled.spec_key,
            scheduled_time=scheduled.scheduled_time,
            schedule_arn=scheduled.schedule_arn,
            execution_id=scheduled.execution_id,
        )
    from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

    uploaded = parse(event=dict(event), model=S3EventNotificationEventBridgeModel)
    obj = uploaded.detail.object
    if uploaded.source == "aws.s3" and uploaded.detail_type == "Object Deleted":
        return SpecDeleted(
            bucket=uploaded.detail.bucket.name,
            key=obj.key,
            version_id=obj.version_id if obj.version_id not in (None, "", "null") else None,
            time=uploaded.time,
            event_id=uploaded.id,
            sequencer=obj.sequencer or None,
        )
    if uploaded.source != "aws.s3" or uploaded.detail_type != "Object Created":
        return NotOurs(f"{uploaded.source} {uploaded.detail_type}")
    return SpecUploaded(
        bucket=uploaded.detail.bucket.name,
        key=obj.key,
        version_id=obj.version_id if obj.version_id not in (None, "", "null") else None,
        etag=obj.etag or None,
        size=int(obj.size) if obj.size is not None else None,
        time=uploaded.time,
        event_id=uploaded.id,
        sequencer=obj.sequencer or None,
    )


def parse_track_event(event: Mapping[str, Any]) -> TrackRequest:
    if event.get("source") != "aws.cleanrooms":
        tick = parse(event=dict(event), model=TrackTick)
        return TrackAll(f"tick from {tick.source}")
    changed: Any = parse(event=dict(event), model=_cleanrooms_event())
    detail = changed.detail
    if detail.membership_id and detail.protected_query_id:
        return QueryChanged(detail.membership_id, detail.protected_query_id, detail.status)
    return TrackAll(f"aws.cleanrooms {changed.detail_type} without query ids")
