"""A per-spec ScheduleV2 in the template keeps its time zone in the sandbox, and fires in it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from crq_local import stack
from crq_local.sandbox.lambda_runtime import Invocation
from crq_local.sandbox.spec_clock import SpecScheduleClock
from crq_local.sandbox.stack_resources import AwsClients, create_stack

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield AwsClients.of(boto3.client)


@dataclass
class Recorder:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def invoke(self, function: str, event: Any) -> Invocation:
        self.calls.append((function, event))
        return Invocation(function, "r", True, 1.0, result={"outcome": "started"})


def test_a_template_schedule_keeps_its_zone_and_fires_in_it(clients: AwsClients) -> None:
    # Given the template with the documented per-spec schedule pasted in, in Berlin time
    template = copy.deepcopy(stack.load_template())
    name, event = stack.schedule_example()
    event["Properties"]["ScheduleExpressionTimezone"] = "Europe/Berlin"
    template["Resources"]["StartFunction"]["Properties"]["Events"][name] = event

    created = create_stack(
        template,
        clients,
        stack_name="crq-sandbox",
        region="us-east-1",
        account_id="123456789012",
        parameters={"MembershipIds": [MEMBERSHIP]},
    )

    # Then the sandbox's schedule has the zone
    (tracked,) = [s for s in created.schedules if s.function == "StartFunction"]
    assert tracked.timezone == "Europe/Berlin"
    schedule = clients.scheduler.get_schedule(Name=tracked.name)
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"

    # And the sandbox's clock fires it on Monday 06:00 Berlin time
    now = [datetime(2026, 3, 27, 12, 0, tzinfo=UTC)]
    recorder = Recorder()
    names = {f.name: logical_id for logical_id, f in created.functions.items()}
    spec_clock = SpecScheduleClock(
        clients.scheduler,
        recorder,  # type: ignore[arg-type]
        names,
        {"TrackFunction"},
        lambda _: None,
        clock=lambda: now[0],
    )
    spec_clock.fire_due()  # first look: nothing due yet
    now[0] += timedelta(days=4)
    spec_clock.fire_due()

    assert [(f, e["scheduledTime"]) for f, e in recorder.calls] == [
        ("StartFunction", "2026-03-30T04:00:00Z")
    ]
