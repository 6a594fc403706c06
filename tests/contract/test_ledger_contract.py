"""The run ledger's contract (crq.ledger.Ledger): FakeLedger and DynamoLedger alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pipeline_fakes import queued_run

from crq.errors import ScheduleRecordFound, StaleRun
from crq.ledger import (
    ActiveRun,
    Ledger,
    NotifyState,
    Outcome,
    ResultObject,
    Run,
    RunEvent,
    RunState,
)
from crq.schedule_state import DesiredSchedule, SpecState, SpecStates, state_id

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
OTHER_MEMBERSHIP = "0b7d5e21-93c4-4f0a-8e6d-5c1a2f9b4e38"
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def new_run(run_id: str, created: datetime = T0, **changes: Any) -> Run:
    """The unit tests' queued run, in this suite's membership, with a request and attributes."""
    fields: dict[str, Any] = {
        "created_at": created,
        "updated_at": created,
        "trigger_time": created,
        "membership_id": MEMBERSHIP,
        "request": {"sqlParameters": {"parameters": {"p": "***"}}, "n": 1.5},
        "notify_attributes": {"team": "media"},
    }
    return queued_run(run_id=run_id, **(fields | changes))


def created(ledger: Ledger, run: Run) -> Run:
    stored = ledger.create(run)
    assert stored is not None
    return stored


def ended(ledger: Ledger, run: Run, notify: NotifyState) -> Run:
    outcome = Outcome(
        event=RunEvent.QUERY_SUCCEEDED,
        ended_at=T0,
        statistics={"billedResourceUtilization": {"units": 0.123456789}},
        objects=[ResultObject(uri="s3://r/a.csv", size=3)],
    )
    return ledger.save(run.evolve(T0, state=RunState.ENDED, outcome=outcome, notify_state=notify))


def test_a_created_run_reads_back_as_stored_at_revision_one(ledger: Ledger) -> None:
    stored = created(ledger, new_run("r1"))
    assert stored.revision == 1
    assert stored == new_run("r1").model_copy(update={"revision": 1})
    assert ledger.get("r1") == stored


def test_a_second_create_of_the_same_id_writes_nothing(ledger: Ledger) -> None:
    first = created(ledger, new_run("r1"))
    assert ledger.create(new_run("r1", spec_name="other")) is None
    assert ledger.get("r1") == first


def test_an_unknown_run_is_none(ledger: Ledger) -> None:
    assert ledger.get("missing") is None
    assert ledger.find_by_query("q-missing") is None


def test_a_save_bumps_the_revision_and_a_stale_one_is_refused(ledger: Ledger) -> None:
    first = created(ledger, new_run("r1"))
    saved = ledger.save(first.evolve(T0, state=RunState.STARTING))
    assert saved.revision == 2 and saved.state is RunState.STARTING
    assert ledger.get("r1") == saved
    with pytest.raises(StaleRun):
        ledger.save(first.evolve(T0, state=RunState.RUNNING))
    assert ledger.get("r1") == saved


def test_a_save_of_a_run_never_created_is_refused(ledger: Ledger) -> None:
    with pytest.raises(StaleRun):
        ledger.save(new_run("never"))
    assert ledger.get("never") is None


def test_values_round_trip_exactly(ledger: Ledger) -> None:
    run = created(ledger, new_run("r1"))
    sent = ended(ledger, run, NotifyState.PENDING)
    back = ledger.get("r1")
    assert back == sent
    assert back is not None and back.outcome is not None
    assert back.outcome.crpu_units == 0.123456789
    assert back.request == {"sqlParameters": {"parameters": {"p": "***"}}, "n": 1.5}


def test_in_flight_is_oldest_first_until_the_notification_is_sent(ledger: Ledger) -> None:
    for i in (3, 1, 2):
        created(ledger, new_run(f"r{i}", T0 + timedelta(seconds=i)))
    assert [r.run_id for r in ledger.in_flight()] == ["r1", "r2", "r3"]
    r2 = ledger.get("r2")
    assert r2 is not None
    pending = ended(ledger, r2, NotifyState.PENDING)
    assert [r.run_id for r in ledger.in_flight()] == ["r1", "r2", "r3"]
    sent = ledger.save(pending.evolve(T0, notify_state=NotifyState.SENT))
    assert [r.run_id for r in ledger.in_flight()] == ["r1", "r3"]
    assert ledger.get("r2") == sent
    assert ledger.in_flight()[0] == ledger.get("r1")


def test_a_run_is_found_by_its_current_query(ledger: Ledger) -> None:
    run = created(ledger, new_run("r1"))
    running = ledger.save(run.evolve(T0, state=RunState.RUNNING, query_id="q-1"))
    assert ledger.find_by_query("q-1") == running
    retried = ledger.save(running.evolve(T0, query_id="q-2"))
    assert ledger.find_by_query("q-2") == retried
    assert ledger.find_by_query("q-1") is None


def test_runs_are_read_by_key_in_the_order_asked_missing_ones_left_out(ledger: Ledger) -> None:
    runs = [created(ledger, new_run(f"r{i}", T0 + timedelta(seconds=i))) for i in range(120)]
    saved = ledger.save(runs[7].evolve(T0, state=RunState.RUNNING, query_id="q-7"))
    asked = [r.run_id for r in reversed(runs)]  # more than one batch's worth (100 keys)
    asked.insert(3, "never-created")
    got = ledger.get_many(asked)
    assert [r.run_id for r in got] == [r.run_id for r in reversed(runs)]
    assert got[-8] == saved  # the run as last saved, not as created
    assert ledger.get_many([]) == []


def test_active_runs_of_a_membership_oldest_first_until_ended(ledger: Ledger) -> None:
    first = created(ledger, new_run("r1", T0 + timedelta(seconds=2)))
    created(ledger, new_run("r0", T0 + timedelta(seconds=1), state=RunState.STARTING))
    created(ledger, new_run("other", T0, membership_id=OTHER_MEMBERSHIP))
    assert ledger.active_in_membership(MEMBERSHIP) == [
        ActiveRun(
            run_id="r0",
            state=RunState.STARTING,
            in_flight_since=new_run("r0", T0 + timedelta(seconds=1)).in_flight_since,
        ),
        ActiveRun(run_id="r1", state=RunState.QUEUED, in_flight_since=first.in_flight_since),
    ]
    ended(ledger, first, NotifyState.PENDING)  # ended, notification still owed
    assert [a.run_id for a in ledger.active_in_membership(MEMBERSHIP)] == ["r0"]
    assert ledger.active_in_membership("3c1d0f5e-7a2b-4e9c-8d61-0a5b4f2e9c17") == []


def test_a_spec_name_is_claimed_once_and_passed_on_only_by_its_owner(ledger: Ledger) -> None:
    assert ledger.claim_spec_name("weekly", "specs/a.yaml", T0) is None
    assert ledger.claim_spec_name("weekly", "specs/a.yaml", T0) is None
    assert ledger.claim_spec_name("weekly", "specs/b.yaml", T0) == "specs/a.yaml"
    ledger.pass_spec_name("weekly", "specs/x.yaml", "specs/b.yaml", T0)  # not the owner
    assert ledger.claim_spec_name("weekly", "specs/b.yaml", T0) == "specs/a.yaml"
    ledger.pass_spec_name("weekly", "specs/a.yaml", "specs/b.yaml", T0)
    assert ledger.claim_spec_name("weekly", "specs/a.yaml", T0) == "specs/b.yaml"
    ledger.pass_spec_name("unclaimed", "specs/a.yaml", "specs/b.yaml", T0)
    assert ledger.claim_spec_name("unclaimed", "specs/c.yaml", T0) is None


def test_name_claims_are_not_runs(ledger: Ledger) -> None:
    ledger.claim_spec_name("weekly", "specs/a.yaml", T0)
    created(ledger, new_run("r1"))
    assert [r.run_id for r in ledger.in_flight()] == ["r1"]
    assert ledger.get("weekly") is None


def _record(spec_states: SpecStates, **changes: Any) -> str:
    record = SpecState(
        state_id=state_id("crq-specs", "specs/r.yaml"),
        bucket="crq-specs",
        spec_key="specs/r.yaml",
        spec_name="r",
        sequencer="0000000000000001",
        updated_at=T0,
        **changes,
    )
    spec_states.claim(record)
    return record.state_id


SCHEDULED = DesiredSchedule(expression="rate(1 day)", timezone="UTC")


@pytest.mark.parametrize(
    ("record", "created"),
    [
        ({}, False),  # an event not yet applied: its schedule change may still be under way
        ({"applied": True}, True),  # applied, no schedule: nothing to remove
        ({"applied": True, "desired": SCHEDULED}, False),  # a schedule to remove first
    ],
    ids=["unfinished", "no-schedule", "scheduled"],
)
def test_a_create_checks_the_spec_state_record_in_the_same_write(
    ledger: Ledger, spec_states: SpecStates, record: dict[str, Any], created: bool
) -> None:
    checked = _record(spec_states, **record)
    run = new_run("r1")
    if created:
        assert ledger.create(run, claim_name="r", no_schedule_record=checked) is not None
        return
    with pytest.raises(ScheduleRecordFound):
        ledger.create(run, claim_name="r", no_schedule_record=checked)
    # Nothing was written: neither the run nor its name claim
    assert ledger.get("r1") is None
    assert ledger.claim_spec_name("r", "specs/other.yaml", T0) is None


def test_a_create_with_no_spec_state_record_is_written(ledger: Ledger) -> None:
    assert ledger.create(new_run("r1"), no_schedule_record=state_id("crq-specs", "x")) is not None


def test_billed_units_count_each_query_once_per_day(ledger: Ledger) -> None:
    assert ledger.billed_units("2026-01-05") == 0
    ledger.add_billed_units("2026-01-05", "q-1", 0.1)
    ledger.add_billed_units("2026-01-05", "q-2", 0.2)
    ledger.add_billed_units("2026-01-05", "q-1", 0.1)  # the same ending, processed again
    ledger.add_billed_units("2026-01-06", "q-3", 1.5)
    assert ledger.billed_units("2026-01-05") == 0.3
    assert ledger.billed_units("2026-01-06") == 1.5
    assert ledger.billed_units("2026-01-07") == 0
