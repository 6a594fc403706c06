"""The run lifecycle with in-memory collaborators: one start attempt, transitions that race safely."""

from __future__ import annotations

from datetime import timedelta

from pipeline_fakes import T0, upload, world

from crq.errors import StartDeferred
from crq.ledger import RunState
from crq.lifecycle import submit
from crq.starter import start_run


def test_two_invocations_racing_on_a_queued_run_start_it_once() -> None:
    w = world()
    w.cleanrooms.start_failures = [StartDeferred(StartDeferred.QUOTA, "full")]
    start_run(upload(w), w.deps)
    queued = w.ledger.only()
    assert queued.state is RunState.QUEUED
    # Given two invocations that both read the QUEUED run
    first, second = submit(queued, w.deps), submit(queued, w.deps)
    # Then only one got past the QUEUED -> STARTING conditional write
    assert {first.outcome, second.outcome} == {"started", "in_progress"}
    assert len(w.cleanrooms.started()) == 1


def test_iam_propagation_delay_is_retried_then_reported() -> None:
    w = world(iam_max_deferrals=2)
    iam = StartDeferred(StartDeferred.IAM_DELAY, "role not ready")
    w.cleanrooms.start_failures = [iam, iam, iam]
    start_run(upload(w), w.deps)
    run = w.ledger.only()
    assert run.state is RunState.QUEUED and run.retry_after == T0 + timedelta(seconds=30)
    # Not before the retry time
    assert submit(run, w.deps).detail == "waiting to retry"
    w.clock.advance(seconds=31)
    submit(w.ledger.only(), w.deps)
    assert w.ledger.only().deferrals == 2
    w.clock.advance(seconds=31)
    submit(w.ledger.only(), w.deps)
    [body] = w.publisher.bodies()
    assert body["event"] == "START_FAILED" and body["error"]["code"] == "IAM_SYNCHRONIZATION_DELAY"
