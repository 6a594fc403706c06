"""The sample events in events/ parse into what the use cases expect."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crq.triggers import (
    QueryChanged,
    SpecDeleted,
    SpecScheduled,
    SpecUploaded,
    TrackAll,
    parse_start_event,
    parse_track_event,
)

EVENTS = Path(__file__).resolve().parents[3] / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_s3_object_created() -> None:
    trigger = parse_start_event(load("start/s3-object-created.json"))
    assert trigger == SpecUploaded(
        bucket="crq-dev-specsbucket-1a2b3c4d5e6f",
        key="specs/weekly-overlap.yaml",
        version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        etag="b1946ac92492d2347c6235b4d2611184",
        size=912,
        time=datetime(2026, 1, 5, 6, 0, tzinfo=UTC),
        event_id="17793124-05d4-b198-2fde-7ededc63b103",
        sequencer="617f08299329d189",
    )


def test_scheduler_input() -> None:
    trigger = parse_start_event(load("start/schedule.json"))
    assert isinstance(trigger, SpecScheduled)
    assert trigger.spec_key == "specs/weekly-overlap.yaml"
    assert trigger.scheduled_time == datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    assert trigger.execution_id == "c8a4c1c3-0b0e-4bbf-9a36-6d2d9b4a7f11"


def test_s3_object_deleted() -> None:
    # A deletion removes the spec's schedule (crq.schedule_sync); it never starts a run.
    assert parse_start_event(load("start/s3-object-deleted.json")) == SpecDeleted(
        bucket="crq-dev-specsbucket-1a2b3c4d5e6f",
        key="specs/weekly-overlap.yaml",
        version_id="1i2Kt7Vq9xB2bDkdl3kpD3z0pBz7WcUy",
        time=datetime(2026, 1, 5, 6, 0, tzinfo=UTC),
        event_id="17793124-05d4-b198-2fde-7ededc63b103",
        sequencer="617f0837b476e463",
    )


@pytest.mark.parametrize(
    "name", ["other-bucket", "other-prefix", "folder-marker", "wrong-extension"]
)
def test_other_not_ours_samples_parse_as_uploads_for_the_use_case_to_judge(name: str) -> None:
    assert isinstance(parse_start_event(load(f"start/not-ours/{name}.json")), SpecUploaded)


def test_an_unversioned_upload_has_no_version() -> None:
    event = load("start/s3-object-created.json")
    event["detail"]["object"].pop("version-id")
    trigger = parse_start_event(event)
    assert isinstance(trigger, SpecUploaded) and trigger.version_id is None


def test_a_malformed_start_event_fails_loudly() -> None:
    with pytest.raises(ValidationError):
        parse_start_event({"specKey": "specs/x.yaml", "scheduledTime": "not a time"})
    with pytest.raises(ValidationError):
        parse_start_event({"specKey": "specs/x.yaml", "scheduledTime": "2026-01-05T06:00:00"})
    with pytest.raises(ValidationError):
        parse_start_event({"hello": "world"})


def test_tick() -> None:
    assert isinstance(parse_track_event(load("track/tick.json")), TrackAll)
    assert isinstance(parse_track_event({}), TrackAll)


def test_cleanrooms_status_event() -> None:
    assert parse_track_event(load("track/cleanrooms-query-succeeded.json")) == QueryChanged(
        membership_id="6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10",
        query_id="0c5d2b7e-8f4a-4d1c-b3e9-6a7f1e2d3c4b",
        status="SUCCESS",
    )


def test_cleanrooms_event_without_ids_is_a_full_track() -> None:
    assert isinstance(parse_track_event(load("track/cleanrooms-without-ids.json")), TrackAll)
