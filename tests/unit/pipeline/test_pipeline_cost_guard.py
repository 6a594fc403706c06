"""The cost guard and the notification's cost: each attempt's units, the run's total, and a
daily CRPU budget that refuses starts (new and queued) once today's units reach it."""

from __future__ import annotations

from datetime import timedelta

from pipeline_fakes import BUCKET, MEMBERSHIP, World, sql_spec, world

from crq.budget import DAILY_BUDGET_EXHAUSTED
from crq.ledger import Run, RunState
from crq.starter import start_run
from crq.tracker import track_in_flight
from crq.triggers import SpecUploaded

STATS = {"totalDurationInMillis": 1000, "billedResourceUtilization": {"units": 0.75}}


def submit(w: World, name: str) -> Run:
    key = f"specs/{name}.yaml"
    version = w.specs.put(key, sql_spec(membership=MEMBERSHIP))
    start_run(SpecUploaded(BUCKET, key, version, "etag", 10, w.clock(), f"ev-{name}"), w.deps)
    return next(r for r in w.ledger.rows.values() if r.spec_name == name)


def test_a_retried_run_reports_every_attempts_units_and_the_total() -> None:
    # Given a run whose first attempt fails with a transient error after being billed
    w = world()
    run = submit(w, "daily")
    first = run.query_id or ""
    error = {"code": "INTERNAL_ERROR", "message": "worker lost", "retryable": True}
    w.cleanrooms.end(first, "FAILED", error=error, statistics=STATS)
    track_in_flight(w.deps)
    second = w.ledger.only().query_id or ""

    # When the second attempt succeeds
    w.cleanrooms.end(second, "SUCCESS")
    track_in_flight(w.deps)

    # Then the notification carries both attempts and their sum, not only the last one
    [body] = w.publisher.bodies()
    assert body["cost"] == {
        "attempts": [
            {"queryId": first, "status": "FAILED", "billedUnits": 0.75},
            {"queryId": second, "status": "SUCCESS", "billedUnits": 0.5},
        ],
        "totalBilledUnits": 1.25,
    }
    assert body["statistics"]["billedResourceUtilization"]["units"] == 0.5  # as before: last


def test_billed_units_count_once_per_query_against_the_day() -> None:
    w = world(daily_crpu_budget=10.0)
    run = submit(w, "daily")
    w.cleanrooms.end(run.query_id or "", "SUCCESS")
    track_in_flight(w.deps)
    track_in_flight(w.deps)  # a second pass must not count the query again
    assert w.ledger.billed_units("2026-01-05") == 0.5
    assert w.ledger.billed_units("2026-01-06") == 0


def test_no_budget_means_no_limit_and_no_counting() -> None:
    w = world()
    w.ledger.add_billed_units("2026-01-05", "earlier", 1000.0)
    run = submit(w, "daily")
    assert run.state is RunState.RUNNING
    w.cleanrooms.end(run.query_id or "", "SUCCESS")
    track_in_flight(w.deps)
    assert w.ledger.budget == {"2026-01-05": {"earlier": 1000.0}}  # no write per run


def test_a_start_past_the_daily_budget_ends_start_failed_saying_so() -> None:
    # Given a stack with a budget of 1 CRPU hour a day, of which 1.0 was billed today
    w = world(daily_crpu_budget=1.0)
    w.ledger.add_billed_units("2026-01-05", "earlier", 1.0)

    # When a spec is uploaded
    run = submit(w, "daily")

    # Then nothing starts and the owner is told why
    assert run.state is RunState.ENDED and w.cleanrooms.started() == []
    [body] = w.publisher.bodies()
    assert body["event"] == "START_FAILED"
    assert body["error"]["code"] == DAILY_BUDGET_EXHAUSTED
    assert "DailyCrpuBudget of 1" in body["error"]["message"]
    assert body["error"]["retryable"] is False


def test_a_start_under_the_budget_runs() -> None:
    w = world(daily_crpu_budget=1.0)
    w.ledger.add_billed_units("2026-01-05", "earlier", 0.9)
    assert submit(w, "daily").state is RunState.RUNNING


def test_queued_runs_fail_too_once_the_budget_is_spent_and_tomorrow_starts_again() -> None:
    # Given a budget of 1.0 and a membership full of crq's queries, with one run queued
    w = world(daily_crpu_budget=1.0, membership_query_cap=1)
    first = submit(w, "first")
    queued = submit(w, "queued")
    assert queued.state is RunState.QUEUED

    # When the running query ends billed 1.0 (the budget), freeing the slot
    w.cleanrooms.end(
        first.query_id or "",
        "SUCCESS",
        result_output={"s3": {"location": "s3://results/first/"}},
        statistics=STATS | {"billedResourceUtilization": {"units": 1.0}},
    )
    track_in_flight(w.deps)

    # Then the queued run is not started past the budget: it ends START_FAILED, saying so
    events = {b["spec"]["name"]: b for b in w.publisher.bodies()}
    assert events["first"]["event"] == "QUERY_SUCCEEDED"
    assert events["queued"]["event"] == "START_FAILED"
    assert events["queued"]["error"]["code"] == DAILY_BUDGET_EXHAUSTED
    assert len(w.cleanrooms.started()) == 1

    # And on the next UTC day, starts run again
    w.clock.advance(days=1)
    assert submit(w, "tomorrow").state is RunState.RUNNING
    assert w.clock() - first.created_at >= timedelta(days=1)
