"""What the schedule use case keeps and asks for: a spec's schedule, its state record, the ports.

`ManagedSchedule` is the one EventBridge Scheduler schedule of a scheduled spec: a deterministic
name from the spec key, in the stack's group, firing the start function with the input it
already understands. `SpecState` is the spec-state record in the runs table (one per spec key
that has, or had, a schedule): the S3 sequencer of the last event applied and the schedule it
wanted, so duplicate and late events change nothing (docs/design.md, "Spec-declared schedules").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from crq.ports import Publisher, SpecStore, utc_now
from crq.settings import Settings

STATE_ID_PREFIX = "spec:"
SCHEDULE_NAME_MAX = 64  # Scheduler: 1-64 of [0-9a-zA-Z-_.]
_NAME_HASH = 16
_NAME_PREFIX = "crq-"
_SEQUENCER_WIDTH = 64  # S3 sequencers are compared left-padded with zeros


def state_id(bucket: str, key: str) -> str:
    """The runs-table key of a spec's state record (apart from run ids: `s3:`, `schedule:`)."""
    digest = hashlib.sha256(f"{bucket}\x00{key}".encode()).hexdigest()[:32]
    return STATE_ID_PREFIX + digest


def schedule_name(spec_key: str) -> str:
    """`specs/team-a/weekly-overlap.yaml` -> `crq-weekly-overlap-<16 hex of the key's hash>`.

    Readable in the console, within Scheduler's 64 characters and charset, and collision-free:
    the hash is of the whole key, so two folders' `x.yaml` get two schedules.
    """
    stem = spec_key.rsplit("/", 1)[-1]
    if "." in stem[1:]:
        stem = stem[: stem.rfind(".")]
    readable = re.sub(r"[^0-9A-Za-z_.-]+", "-", stem).strip("-.") or "spec"
    digest = hashlib.sha256(spec_key.encode()).hexdigest()[:_NAME_HASH]
    room = SCHEDULE_NAME_MAX - len(_NAME_PREFIX) - 1 - _NAME_HASH
    return f"{_NAME_PREFIX}{readable[:room]}-{digest}"


def comparable_sequencer(sequencer: str | None) -> str:
    """S3's rule: left-pad the shorter sequencer with zeros, then compare as strings."""
    return (sequencer or "").upper().rjust(_SEQUENCER_WIDTH, "0")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class DesiredSchedule(_Model):
    """What a spec version asks for: enough to rebuild the Scheduler request from settings."""

    expression: str
    timezone: str
    start: datetime | None = None
    end: datetime | None = None
    flexible_window_minutes: int | None = None


class ManagedSchedule(_Model):
    """One schedule as crq creates it in EventBridge Scheduler (and reads it back)."""

    name: str
    group: str
    expression: str
    timezone: str
    start: datetime | None = None
    end: datetime | None = None
    flexible_window_minutes: int | None = None
    target_arn: str
    role_arn: str
    dead_letter_arn: str | None = None
    input: str

    @staticmethod
    def target_input(spec_key: str) -> str:
        """The start function's input: the spec key and Scheduler's context attributes."""
        return json.dumps(
            {
                "specKey": spec_key,
                "scheduledTime": "<aws.scheduler.scheduled-time>",
                "scheduleArn": "<aws.scheduler.schedule-arn>",
                "executionId": "<aws.scheduler.execution-id>",
            }
        )


class SpecState(_Model):
    """The spec-state record: the last S3 event applied to a spec key, and its schedule."""

    state_id: str
    bucket: str
    spec_key: str
    spec_name: str
    sequencer: str  # comparable_sequencer() of the event
    version_id: str | None = None
    desired: DesiredSchedule | None = None  # None: the key has no schedule
    applied: bool = False  # the Scheduler change and its notification are done
    reason: str = ""
    updated_at: datetime


class StateClaimRefused(Exception):
    """The record holds the same or a later event: this one changes nothing."""

    def __init__(self, current: SpecState) -> None:
        super().__init__(f"{current.spec_key}: state at sequencer {current.sequencer}")
        self.current = current


class SpecStates(Protocol):
    def get(self, state_id: str) -> SpecState | None: ...

    def claim(self, state: SpecState) -> None:
        """Write `state` if the record is absent, older (sequencer), or the same event not yet
        applied (a retry); else raise StateClaimRefused with the record."""
        ...

    def mark_applied(self, state: SpecState) -> bool:
        """Set `applied` if the record still holds `state`'s sequencer; False if overtaken."""
        ...

    def all(self) -> list[SpecState]:
        """Every record (tools only: `crq schedules`)."""
        ...


class ScheduleGateway(Protocol):
    def put(self, schedule: ManagedSchedule) -> None:
        """Create the schedule, or update it in place (idempotent)."""
        ...

    def delete(self, group: str, name: str) -> None:
        """Delete the schedule; a schedule already gone is fine."""
        ...

    def get(self, group: str, name: str) -> ManagedSchedule | None: ...


@dataclass(frozen=True)
class ScheduleDeps:
    """The collaborators of the schedule use case (crq.schedule_sync), built once per cold
    start by crq.adapters."""

    settings: Settings
    specs: SpecStore
    states: SpecStates
    scheduler: ScheduleGateway
    publisher: Publisher
    clock: Callable[[], datetime] = field(default=utc_now)
