"""Helpers for the spec-schedule tests: specs with `schedule:`, S3 events with sequencers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import boto3

from crq.schedule_state import schedule_name

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
SCHEDULE_GROUP = "crq-test-spec-schedules"  # the stack's SpecSchedules, as the fixture names it
KEY = "specs/team-a/weekly-overlap.yaml"
EVENTS = Path(__file__).resolve().parents[2] / "events"

_sequencers = itertools.count(0x617F08299329D189)


def next_sequencer() -> str:
    """S3 sequencers grow per key; each call is later than the one before."""
    return f"{next(_sequencers):X}"


def scheduled_spec(schedule: str | None, *, timezone: str | None = None, extra: str = "") -> str:
    lines = [
        "name: weekly-overlap",
        f"membershipIdentifier: {MEMBERSHIP}",
        "sqlParameters:",
        '  queryString: "SELECT COUNT(*) AS n FROM impressions"',
        "resultConfiguration:",
        "  outputConfiguration:",
        "    s3: {resultFormat: CSV, bucket: crq-results, "
        "keyPrefix: 'weekly/{{ run_date | %Y-%m-%d }}/'}",
        "notify: {team: media}",
    ]
    if schedule is not None:
        lines.append(
            schedule if schedule.startswith(("schedule:", "  ")) else f"schedule: {schedule}"
        )
    if timezone is not None:
        lines.append(f"timezone: {timezone}")
    return "\n".join(lines) + "\n" + extra


def upload(stack: Any, body: str, key: str = KEY) -> dict[str, Any]:
    """Put the object; the Object Created event for it, with a fresh (later) sequencer."""
    event = stack.upload(key, body)
    event["detail"]["object"]["sequencer"] = next_sequencer()
    return event


def deleted_event(stack: Any, key: str = KEY, version_id: str | None = None) -> dict[str, Any]:
    """Delete the object (a delete marker), or one version of it for good; the Object Deleted
    event for it."""
    if version_id is None:
        marker = stack.s3.delete_object(Bucket=stack.specs_bucket, Key=key)
    else:
        marker = stack.s3.delete_object(Bucket=stack.specs_bucket, Key=key, VersionId=version_id)
    event: dict[str, Any] = json.loads((EVENTS / "start" / "s3-object-deleted.json").read_text())
    event["resources"] = [f"arn:aws:s3:::{stack.specs_bucket}"]
    event["detail"]["bucket"]["name"] = stack.specs_bucket
    event["detail"]["object"].update(
        {"key": key, "version-id": marker["VersionId"], "sequencer": next_sequencer()}
    )
    return event


def get_schedule(key: str = KEY) -> dict[str, Any] | None:
    """The schedule as `aws scheduler get-schedule` shows it, or None."""
    client = boto3.client("scheduler")
    try:
        found: dict[str, Any] = client.get_schedule(
            GroupName=SCHEDULE_GROUP, Name=schedule_name(key)
        )
    except client.exceptions.ResourceNotFoundException:
        return None
    return found


def fired(key: str, scheduled_time: str) -> dict[str, Any]:
    """The start function's input when the schedule fires at `scheduled_time` (Scheduler fills
    in its context attributes in the target input)."""
    schedule = get_schedule(key)
    assert schedule is not None
    text = (
        schedule["Target"]["Input"]
        .replace("<aws.scheduler.scheduled-time>", scheduled_time)
        .replace("<aws.scheduler.schedule-arn>", schedule["Arn"])
        .replace("<aws.scheduler.execution-id>", f"exec-{scheduled_time}")
    )
    event: dict[str, Any] = json.loads(text)
    return event


def schedule_notices(notifications: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for n in notifications if n["body"]["event"].startswith("SCHEDULE_")]
