"""The track use case with in-memory collaborators: every run ends, once, and is told."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pipeline_fakes import (
    MEMBERSHIP,
    OTHER_MEMBERSHIP,
    result_location,
    run_named,
    start_spec,
    world,
)

from crq.errors import ResultsUnavailable, StartDeferred
from crq.ledger import NotifyState, Run, RunState
from crq.tracker import TrackIncomplete, track_in_flight
from crq.triggers import QueryChanged, TrackAll


def test_a_succeeded_query_is_notified_with_its_results() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.clock.advance(minutes=2)
    w.cleanrooms.end(run.query_id or "")
    location = result_location(w.cleanrooms.queries[run.query_id or ""])
    w.results.objects.clear()  # the query wrote two files, not the fake's usual one
    w.results.put(location + "a.csv", 10)
    w.results.put(location + "b.csv", 20)
    w.cleanrooms.calls.clear()

    summary = track_in_flight(w.deps)

    assert (summary.ended, summary.notified) == (1, 1)
    [message] = w.publisher.messages
    assert message.subject == "crq: daily SUCCEEDED"
    assert message.attributes == {
        "event": "QUERY_SUCCEEDED",
        "status": "SUCCEEDED",
        "specName": "daily",
        "membershipId": MEMBERSHIP,
    }
    body = w.publisher.bodies()[0]
    assert body["version"] == "1.1" and body["event"] == "QUERY_SUCCEEDED"
    assert body["runId"] == run.run_id
    assert body["notificationId"] == f"{run.run_id}:1:QUERY_SUCCEEDED"
    assert body["query"]["id"] == run.query_id and body["query"]["status"] == "SUCCESS"
    assert (body["query"]["attempt"], body["query"]["maxAttempts"]) == (1, 2)
    assert body["result"] == {
        "output": {"s3": {"location": location}},
        "objects": [
            {"uri": location + "a.csv", "size": 10},
            {"uri": location + "b.csv", "size": 20},
        ],
    }
    assert body["statistics"] == {
        "totalDurationInMillis": 61000,
        "billedResourceUtilization": {"units": 0.5},
    }
    assert body["cost"] == {
        "attempts": [{"queryId": run.query_id, "status": "SUCCESS", "billedUnits": 0.5}],
        "totalBilledUnits": 0.5,
    }
    assert "error" not in body and "errors" not in body and "reason" not in body
    stored = w.ledger.only()
    assert stored.state is RunState.ENDED and stored.notify_state is NotifyState.SENT
    assert not stored.in_flight and stored.expires_at == int(
        (w.clock() + timedelta(days=90)).timestamp()
    )
    # One List page and one Get, for the one query that ended
    assert w.cleanrooms.calls == [("list", MEMBERSHIP), ("get", run.query_id)]
    assert [o.event for o in w.metrics.outcomes] == ["QUERY_SUCCEEDED"]
    # A second tick has nothing left to do
    w.cleanrooms.calls.clear()
    track_in_flight(w.deps)
    assert w.cleanrooms.calls == [] and len(w.publisher.messages) == 1


def test_many_runs_in_one_membership_cost_one_list_call_and_gets_only_for_ended_ones() -> None:
    w = world(membership_query_cap=100)
    w.cleanrooms.cap = 100
    runs = []
    for i in range(30):
        runs.append(start_spec(w, f"spec-{i}"))
        w.clock.advance(seconds=1)
    # Plenty of older history in the membership, beyond one page
    for i in range(300):
        w.cleanrooms.add(
            MEMBERSHIP, "SUCCESS", runs[0].query_create_time - timedelta(hours=1, minutes=i)
        )  # type: ignore[operator]
    for run in runs[:3]:
        w.cleanrooms.end(run.query_id or "")
    w.cleanrooms.calls.clear()

    track_in_flight(w.deps)

    assert w.cleanrooms.count("list") == 1
    assert sorted(q for op, q in w.cleanrooms.calls if op == "get") == sorted(
        r.query_id for r in runs[:3]
    )
    assert len(w.publisher.messages) == 3


def test_a_run_older_than_the_first_page_is_found_by_paging_or_get() -> None:
    w = world()
    start_spec(w, "old")
    w.cleanrooms.page_size = 10
    for i in range(25):
        w.cleanrooms.add(MEMBERSHIP, "SUCCESS", w.clock() + timedelta(seconds=i + 1))
    w.cleanrooms.calls.clear()
    track_in_flight(w.deps)
    # Paged back until past the run's query; it is still running, so no Get
    assert w.cleanrooms.count("list") == 3 and w.cleanrooms.count("get") == 0
    assert run_named(w, "old").state is RunState.RUNNING


def test_a_query_clean_rooms_no_longer_knows_is_reported_not_polled_forever() -> None:
    w = world()
    run = start_spec(w, "daily")
    del w.cleanrooms.queries[run.query_id or ""]
    track_in_flight(w.deps)
    [body] = w.publisher.bodies()
    assert body["event"] == "QUERY_FAILED"
    assert body["error"]["code"] == "QUERY_NOT_FOUND" and body["error"]["retryable"] is False
    assert not w.ledger.only().in_flight


def test_a_failed_query_is_notified_with_the_engine_error() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.cleanrooms.end(
        run.query_id or "",
        "FAILED",
        error={"code": "MALFORMED_QUERY", "message": "syntax error at line 1"},
    )
    track_in_flight(w.deps)
    [body] = w.publisher.bodies()
    assert body["event"] == "QUERY_FAILED"
    assert body["error"] == {
        "code": "MALFORMED_QUERY",
        "message": "syntax error at line 1",
        "retryable": False,
    }
    assert "result" not in body
    assert w.publisher.messages[0].subject == "crq: daily FAILED"


@pytest.mark.parametrize("flag", [True, None])
def test_a_transient_failure_is_retried_and_only_the_final_outcome_notified(
    flag: bool | None,
) -> None:
    w = world()
    run = start_spec(w, "daily")
    first = run.query_id or ""
    error = {"code": "INTERNAL_ERROR", "message": "worker lost", "retryable": flag}
    w.cleanrooms.end(first, "FAILED", error=error)

    track_in_flight(w.deps)

    # Then no notification yet: attempt 2 runs, started in the same pass
    assert w.publisher.messages == []
    again = w.ledger.only()
    assert (again.state, again.attempt, again.past_query_ids) == (RunState.RUNNING, 2, [first])
    assert again.query_id != first and len(w.cleanrooms.started()) == 2
    assert "retried" in w.metrics.events
    # When attempt 2 fails the same way, attempts are exhausted: one notification, attempt 2 of 2
    w.cleanrooms.end(again.query_id or "", "FAILED", error=error)
    track_in_flight(w.deps)
    [body] = w.publisher.bodies()
    assert body["event"] == "QUERY_FAILED" and body["error"]["retryable"] is True
    assert (body["query"]["attempt"], body["query"]["maxAttempts"]) == (2, 2)
    assert body["notificationId"].endswith(":2:QUERY_FAILED")


def test_an_error_clean_rooms_marks_not_retryable_is_not_retried() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.cleanrooms.end(
        run.query_id or "",
        "FAILED",
        error={"code": "INTERNAL_ERROR", "message": "x", "retryable": False},
    )
    track_in_flight(w.deps)
    assert [b["event"] for b in w.publisher.bodies()] == ["QUERY_FAILED"]
    assert len(w.cleanrooms.started()) == 1


def test_a_timed_out_query_is_notified_and_not_retried() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.cleanrooms.end(run.query_id or "", "TIMED_OUT")
    track_in_flight(w.deps)
    assert [b["event"] for b in w.publisher.bodies()] == ["QUERY_TIMED_OUT"]
    assert w.publisher.messages[0].subject == "crq: daily TIMED_OUT"


def test_a_query_past_its_max_runtime_is_cancelled_once_and_notified_with_the_reason() -> None:
    w = world()
    run = start_spec(w, "slow", extra="maxRuntimeMinutes: 10\n")
    w.cleanrooms.end(run.query_id or "", "STARTED")
    w.clock.advance(minutes=9)
    track_in_flight(w.deps)
    assert w.cleanrooms.count("cancel") == 0
    w.clock.advance(minutes=2)
    summary = track_in_flight(w.deps)
    assert summary.cancelled == 1 and w.cleanrooms.count("cancel") == 1
    stored = run_named(w, "slow")
    assert stored.cancel_requested_at == w.clock() and "10 minutes" in (stored.cancel_reason or "")
    # While it is CANCELLING, no second cancel
    w.clock.advance(minutes=1)
    track_in_flight(w.deps)
    assert w.cleanrooms.count("cancel") == 1
    w.cleanrooms.end(run.query_id or "", "CANCELLED")
    track_in_flight(w.deps)
    [body] = w.publisher.bodies()
    assert body["event"] == "QUERY_CANCELLED"
    assert body["reason"] == "ran longer than maxRuntimeMinutes (10 minutes)"
    assert w.publisher.messages[0].subject == "crq: slow CANCELLED"


def test_a_one_minute_limit_reads_as_one_minute() -> None:
    w = world()
    run = start_spec(w, "quick", extra="maxRuntimeMinutes: 1\n")
    w.cleanrooms.end(run.query_id or "", "STARTED")
    w.clock.advance(minutes=2)
    track_in_flight(w.deps)

    assert run_named(w, "quick").cancel_reason == "ran longer than maxRuntimeMinutes (1 minute)"


def test_the_stack_default_max_runtime_applies_when_the_spec_sets_none() -> None:
    w = world(default_max_runtime_minutes=30)
    run = start_spec(w, "daily")
    assert run.max_runtime_minutes == 30
    w.clock.advance(minutes=31)
    track_in_flight(w.deps)
    assert w.cleanrooms.count("cancel") == 1


def test_a_cancel_that_arrives_after_the_end_reports_the_real_end() -> None:
    w = world()
    run = start_spec(w, "slow", extra="maxRuntimeMinutes: 1\n")
    w.clock.advance(minutes=2)
    w.cleanrooms.cancel_conflict = True  # it succeeded between the List and the Update
    w.cleanrooms.queries[run.query_id or ""].status = "STARTED"

    def succeed_on_get(op_query: str) -> None:
        w.cleanrooms.end(op_query)

    original_cancel = w.cleanrooms.cancel_query

    def cancel(membership_id: str, query_id: str) -> None:
        succeed_on_get(query_id)
        original_cancel(membership_id, query_id)

    w.cleanrooms.cancel_query = cancel  # type: ignore[method-assign]
    track_in_flight(w.deps)
    assert [b["event"] for b in w.publisher.bodies()] == ["QUERY_SUCCEEDED"]


def test_queued_runs_start_oldest_first_as_slots_free_never_over_the_cap() -> None:
    w = world()
    runs = []
    for i in range(8):
        runs.append(start_spec(w, f"spec-{i}"))
        w.clock.advance(seconds=1)
    assert [r.state for r in runs] == [RunState.RUNNING] * 5 + [RunState.QUEUED] * 3
    assert w.cleanrooms.count("start") == 5  # crq knew its own five filled the membership

    # When two queries end
    for run in runs[:2]:
        w.cleanrooms.end(run.query_id or "")
    w.cleanrooms.calls.clear()
    summary = track_in_flight(w.deps)

    # Then the two oldest queued runs start, and no start call is refused
    assert summary.started == 2 and w.cleanrooms.count("start") == 2
    assert [run_named(w, f"spec-{i}").state for i in (5, 6, 7)] == [
        RunState.RUNNING,
        RunState.RUNNING,
        RunState.QUEUED,
    ]
    assert w.cleanrooms.active(MEMBERSHIP) == 5
    # Draining the rest: everything runs, everything is notified, once
    for _ in range(6):
        for query in w.cleanrooms.started():
            if query.status == "SUBMITTED":
                w.cleanrooms.end(query.id)
        track_in_flight(w.deps)
    assert len(w.publisher.messages) == 8
    assert len({b["notificationId"] for b in w.publisher.bodies()}) == 8
    assert len(w.cleanrooms.started()) == 8


def test_queries_crq_did_not_start_count_against_the_cap() -> None:
    w = world()
    w.cleanrooms.start_failures = [StartDeferred(StartDeferred.QUOTA, "full")]
    start_spec(w, "mine")
    for _ in range(4):
        w.cleanrooms.add(MEMBERSHIP, "STARTED", w.clock() - timedelta(minutes=5))
    w.cleanrooms.add(MEMBERSHIP, "SUBMITTED", w.clock() - timedelta(minutes=1))
    w.cleanrooms.calls.clear()
    track_in_flight(w.deps)
    assert w.cleanrooms.count("start") == 0
    assert run_named(w, "mine").state is RunState.QUEUED


def test_a_starting_run_whose_call_took_effect_is_reconciled_to_its_query() -> None:
    w = world()

    def crash(_query: object) -> None:
        raise TimeoutError("lost")

    w.cleanrooms.after_create = crash
    with pytest.raises(TimeoutError):
        start_spec(w, "daily")
    w.cleanrooms.after_create = None
    # Someone else's query with another request, in the same window
    w.cleanrooms.add(
        MEMBERSHIP, "STARTED", w.clock(), request={"sqlParameters": {"queryString": "SELECT 1"}}
    )
    w.clock.advance(seconds=30)
    track_in_flight(w.deps)
    assert run_named(w, "daily").state is RunState.STARTING  # within the grace: wait
    w.clock.advance(minutes=2)
    track_in_flight(w.deps)
    run = run_named(w, "daily")
    mine = next(
        q
        for q in w.cleanrooms.started()
        if "impressions" in q.request.get("sqlParameters", {}).get("queryString", "")
    )
    assert run.state is RunState.RUNNING and run.query_id == mine.id
    assert w.cleanrooms.count("start") == 1


def test_a_starting_run_whose_call_never_took_effect_is_queued_and_started_again() -> None:
    w = world()
    w.cleanrooms.start_failures = [ConnectionError("refused")]
    with pytest.raises(ConnectionError):
        start_spec(w, "daily")
    assert w.cleanrooms.started() == []
    # Within the grace the call might still take effect: the run is left alone
    w.clock.advance(seconds=90)
    track_in_flight(w.deps)
    assert run_named(w, "daily").state is RunState.STARTING
    w.clock.advance(minutes=3)
    track_in_flight(w.deps)
    run = run_named(w, "daily")
    assert run.state is RunState.RUNNING and run.attempt == 1
    assert len(w.cleanrooms.started()) == 1


def test_a_failed_publish_is_retried_after_the_lease_with_the_same_notification_id() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.cleanrooms.end(run.query_id or "")
    w.publisher.failures = 1
    track_in_flight(w.deps)
    stored = w.ledger.only()
    assert (
        w.publisher.messages == []
        and stored.notify_state is NotifyState.CLAIMED
        and stored.in_flight
    )
    # Before the lease expires nobody re-publishes
    w.clock.advance(seconds=30)
    track_in_flight(w.deps)
    assert w.publisher.messages == []
    w.clock.advance(minutes=2)
    track_in_flight(w.deps)
    [body] = w.publisher.bodies()
    assert body["notificationId"] == f"{run.run_id}:1:QUERY_SUCCEEDED"
    assert w.ledger.only().notify_state is NotifyState.SENT


def test_the_fast_path_reads_only_the_named_query() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.cleanrooms.end(run.query_id or "")
    w.cleanrooms.calls.clear()
    summary = track_in_flight(w.deps, QueryChanged(MEMBERSHIP, run.query_id or "", "SUCCESS"))
    assert w.cleanrooms.calls == [("get", run.query_id)]
    assert summary.ended == 1 and len(w.publisher.messages) == 1


def test_the_fast_path_fills_the_freed_slot() -> None:
    w = world(membership_query_cap=1)
    first = start_spec(w, "first")
    start_spec(w, "second")
    assert run_named(w, "second").state is RunState.QUEUED
    w.cleanrooms.end(first.query_id or "")
    track_in_flight(w.deps, QueryChanged(MEMBERSHIP, first.query_id or "", "SUCCESS"))
    assert run_named(w, "second").state is RunState.RUNNING


def test_the_fast_path_fills_a_slot_from_its_membership_rows_never_the_whole_index() -> None:
    # Given a full membership with queued runs, and another membership with its own queue
    w = world(membership_query_cap=1)
    first = start_spec(w, "first")
    for name in ("second", "third", "fourth"):
        w.clock.advance(seconds=1)  # queued in this order
        start_spec(w, name)
    start_spec(w, "elsewhere-running", membership=OTHER_MEMBERSHIP)
    start_spec(w, "elsewhere-queued", membership=OTHER_MEMBERSHIP)
    read: list[list[str]] = []
    whole_index = w.ledger.in_flight
    get_many = w.ledger.get_many

    def in_flight() -> list[Run]:
        raise AssertionError("a status event read the whole in-flight index")

    def recorded(run_ids: list[str]) -> list[Run]:
        read.append(run_ids)
        return get_many(run_ids)

    w.ledger.in_flight = in_flight  # type: ignore[method-assign]
    w.ledger.get_many = recorded  # type: ignore[method-assign]

    # When the first query ends and its status event arrives
    w.cleanrooms.end(first.query_id or "")
    track_in_flight(w.deps, QueryChanged(MEMBERSHIP, first.query_id or "", "SUCCESS"))

    # Then the oldest queued run of that membership starts, read by key with the membership's
    # other runs only (its queue head, two slots' worth), and the other membership is untouched
    w.ledger.in_flight = whole_index  # type: ignore[method-assign]
    assert run_named(w, "second").state is RunState.RUNNING
    assert run_named(w, "third").state is RunState.QUEUED
    assert run_named(w, "elsewhere-queued").state is RunState.QUEUED
    assert [[w.ledger.rows[i].spec_name for i in ids] for ids in read] == [["second", "third"]]


def test_the_fast_path_ignores_queries_crq_does_not_know() -> None:
    w = world()
    start_spec(w, "daily")
    w.cleanrooms.calls.clear()
    summary = track_in_flight(
        w.deps, QueryChanged(MEMBERSHIP, "0c5d2b7e-8f4a-4d1c-b3e9-6a7f1e2d3c4b", "SUCCESS")
    )
    assert summary.ignored and w.cleanrooms.calls == [] and w.publisher.messages == []


def test_a_stale_event_changes_nothing() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.cleanrooms.end(run.query_id or "", "STARTED")
    # An out-of-order "Succeeded" event for a query that is still running
    track_in_flight(w.deps, QueryChanged(MEMBERSHIP, run.query_id or "", "SUCCESS"))
    assert run_named(w, "daily").state is RunState.RUNNING and w.publisher.messages == []


def test_one_failing_membership_does_not_stop_the_others() -> None:
    w = world()
    broken = start_spec(w, "broken", membership=OTHER_MEMBERSHIP)
    fine = start_spec(w, "fine")
    w.cleanrooms.end(fine.query_id or "")
    original = w.cleanrooms.list_queries

    def list_queries(membership_id: str, not_before: object) -> object:
        if membership_id == OTHER_MEMBERSHIP:
            raise PermissionError("AccessDenied")
        return original(membership_id, not_before)  # type: ignore[arg-type]

    w.cleanrooms.list_queries = list_queries  # type: ignore[method-assign]
    with pytest.raises(TrackIncomplete, match=OTHER_MEMBERSHIP):
        track_in_flight(w.deps, TrackAll("tick"))
    assert [b["event"] for b in w.publisher.bodies()] == ["QUERY_SUCCEEDED"]
    assert run_named(w, "broken").state is RunState.RUNNING and broken.query_id


def test_results_that_cannot_be_listed_do_not_hold_the_notification_back() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.cleanrooms.end(run.query_id or "")

    def unavailable(location: str, limit: int) -> object:
        raise ResultsUnavailable(location, "AccessDenied")

    w.results.list_objects = unavailable  # type: ignore[method-assign,assignment]
    track_in_flight(w.deps)
    [body] = w.publisher.bodies()
    assert body["event"] == "QUERY_SUCCEEDED"
    # the files are not listed, and the notification says so rather than dropping the key
    assert body["result"] == {
        "output": {"s3": {"location": result_location(w.cleanrooms.queries[run.query_id or ""])}},
        "objectsNotListed": True,
    }


def test_a_query_already_cancelling_is_recorded_not_cancelled_again() -> None:
    w = world()
    run = start_spec(w, "slow", extra="maxRuntimeMinutes: 1\n")
    w.cleanrooms.queries[run.query_id or ""].status = "CANCELLING"
    w.cleanrooms.cancel_conflict = True
    w.clock.advance(minutes=2)
    track_in_flight(w.deps)
    stored = run_named(w, "slow")
    assert stored.cancel_requested_at == w.clock() and w.cleanrooms.count("cancel") == 1
    track_in_flight(w.deps)
    assert w.cleanrooms.count("cancel") == 1
