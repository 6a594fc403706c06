"""One track pass: memberships and runs handled concurrently, within a time budget.

Work the budget leaves is not lost: it stays as it is in the ledger and the next tick does it.
No test here measures a time: concurrency is shown with barriers (a sequential pass could
never get all the parties to one), the budget with a deadline that has passed.
"""

from __future__ import annotations

import threading
from typing import Any

from pipeline_fakes import BUCKET, MEMBERSHIP, OTHER_MEMBERSHIP, World, sql_spec, world

from crq.deadline import Deadline
from crq.ledger import NotifyState, Run, RunState
from crq.starter import start_run
from crq.tracker import track_in_flight
from crq.triggers import SpecUploaded


def submit(w: World, name: str, membership: str = MEMBERSHIP) -> Run:
    key = f"specs/{name}.yaml"
    version = w.specs.put(key, sql_spec(membership=membership))
    start_run(SpecUploaded(BUCKET, key, version, "etag", 10, w.clock(), f"ev-{name}"), w.deps)
    return next(r for r in w.ledger.rows.values() if r.spec_name == name)


def ended_runs(w: World, per_membership: int = 3) -> list[Run]:
    runs = [
        submit(w, f"{m[:4]}-{i}", m)
        for m in (MEMBERSHIP, OTHER_MEMBERSHIP)
        for i in range(per_membership)
    ]
    w.clock.advance(minutes=2)
    for run in runs:
        w.cleanrooms.end(run.query_id or "")
    return runs


class FlipsAfter:
    """A deadline that passes after `checks` looks: the budget runs out mid-pass."""

    def __init__(self, checks: int) -> None:
        self.left = checks
        self._lock = threading.Lock()

    def passed(self) -> bool:
        with self._lock:
            self.left -= 1
            return self.left < 0


def test_a_pass_whose_budget_is_spent_leaves_the_work_for_the_next_tick() -> None:
    # Given six runs in two memberships whose queries ended
    w = world()
    runs = ended_runs(w)

    # When a tick starts with its budget already spent
    summary = track_in_flight(w.deps, deadline=Deadline(0.0))

    # Then it did nothing, said so, and every run is as it was
    assert (summary.ended, summary.notified, summary.deferred) == (0, 0, 2)
    assert all(w.ledger.rows[r.run_id].state is RunState.RUNNING for r in runs)
    assert w.publisher.messages == []

    # And the next tick ends and notifies each run once
    summary = track_in_flight(w.deps)
    assert (summary.ended, summary.notified) == (6, 6)
    assert len(w.publisher.messages) == 6


def test_a_budget_running_out_mid_pass_loses_nothing_and_notifies_each_run_once() -> None:
    w = world()
    runs = ended_runs(w)

    # When the budget runs out after a few units of work
    first = track_in_flight(w.deps, deadline=FlipsAfter(4))  # type: ignore[arg-type]

    # Then what was done is whole (ended and sent), what was not is untouched (running)
    assert first.deferred > 0 and first.ended < 6
    for run in runs:
        row = w.ledger.rows[run.run_id]
        assert (row.state, row.notify_state) in (
            (RunState.RUNNING, None),
            (RunState.ENDED, NotifyState.SENT),
        )
    # And later ticks finish the rest: each run notified exactly once
    second = track_in_flight(w.deps)
    assert first.ended + second.ended == 6
    ids = [m.message for m in w.publisher.messages]
    assert len(ids) == 6 and len(set(ids)) == 6


def test_the_runs_of_a_membership_end_concurrently() -> None:
    # Given three ended runs of one membership, and a Get that waits until all three are asked
    w = world()
    for i in range(3):
        submit(w, f"run-{i}")
    w.clock.advance(minutes=2)
    for query in list(w.cleanrooms.queries.values()):
        w.cleanrooms.end(query.id)
    meeting = threading.Barrier(3, timeout=10)
    original = w.cleanrooms.get_query

    def get_query(membership_id: str, query_id: str) -> Any:
        meeting.wait()  # a pass that read them one at a time would break the barrier
        return original(membership_id, query_id)

    w.cleanrooms.get_query = get_query  # type: ignore[method-assign]
    # A list that does not show them (as past its first page): each run needs its own Get.
    w.cleanrooms.list_queries = lambda membership_id, not_before: []  # type: ignore[method-assign]

    # When the tick runs, then all three end, each notified once
    summary = track_in_flight(w.deps)
    assert (summary.ended, summary.notified, summary.failures) == (3, 3, [])


def test_memberships_are_tracked_concurrently() -> None:
    # Given two memberships with runs, and a List that waits until both are asked
    w = world()
    submit(w, "a", MEMBERSHIP)
    submit(w, "b", OTHER_MEMBERSHIP)
    meeting = threading.Barrier(2, timeout=10)
    original = w.cleanrooms.list_queries

    def list_queries(membership_id: str, not_before: Any) -> Any:
        meeting.wait()
        return original(membership_id, not_before)

    w.cleanrooms.list_queries = list_queries  # type: ignore[method-assign]

    # When the tick runs, then both were tracked, neither failed
    summary = track_in_flight(w.deps)
    assert (summary.memberships, summary.failures) == (2, [])


def test_a_pass_with_one_worker_does_the_same_work() -> None:
    w = world(track_workers=1)
    ended_runs(w)
    summary = track_in_flight(w.deps)
    assert (summary.ended, summary.notified, summary.deferred) == (6, 6, 0)
