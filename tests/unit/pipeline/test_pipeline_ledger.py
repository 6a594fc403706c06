"""Run ids, the InFlight order, and when a run still needs its notification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline_fakes import T0
from pipeline_fakes import queued_run as run

from crq.ledger import (
    NotifyState,
    Outcome,
    RunEvent,
    RunState,
    in_flight_since,
    schedule_run_id,
    upload_run_id,
)


def test_run_ids_are_deterministic_per_trigger() -> None:
    assert upload_run_id("b", "k", "v1") == upload_run_id("b", "k", "v1")
    assert upload_run_id("b", "k", "v1") != upload_run_id("b", "k", "v2")
    assert upload_run_id("ab", "c", "v") != upload_run_id("a", "bc", "v")
    assert (
        upload_run_id("b", "k", "v1").startswith("s3:") and len(upload_run_id("b", "k", "v")) == 35
    )
    same_instant = datetime(2026, 1, 5, 7, 0, tzinfo=UTC).astimezone(tz=None)
    assert schedule_run_id("k", T0 + timedelta(hours=1)) == schedule_run_id("k", same_instant)
    assert schedule_run_id("k", T0).startswith("schedule:")


def test_in_flight_order_is_time_order() -> None:
    early = in_flight_since(T0, "zzz")
    late = in_flight_since(T0 + timedelta(microseconds=1), "aaa")
    later = in_flight_since(T0 + timedelta(seconds=10), "aaa")
    assert early < late < later


def test_in_flight_until_the_notification_is_sent() -> None:
    outcome = Outcome(event=RunEvent.QUERY_SUCCEEDED, ended_at=T0)
    assert run().in_flight
    ended = run(state=RunState.ENDED, outcome=outcome, notify_state=NotifyState.PENDING)
    assert ended.in_flight and ended.needs_notification(T0)
    claimed = ended.model_copy(
        update={
            "notify_state": NotifyState.CLAIMED,
            "notify_lease_until": T0 + timedelta(minutes=2),
        }
    )
    assert claimed.in_flight and not claimed.needs_notification(T0)
    assert claimed.needs_notification(T0 + timedelta(minutes=2))
    sent = ended.model_copy(update={"notify_state": NotifyState.SENT})
    assert not sent.in_flight and not sent.needs_notification(T0)
    assert ended.notification_id == "r:1:QUERY_SUCCEEDED"
