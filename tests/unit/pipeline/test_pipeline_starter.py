"""The start use case with in-memory collaborators: one query per trigger, whatever arrives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pipeline_fakes import BUCKET, MEMBERSHIP, T0, sql_spec, template_spec, upload, world

from crq.errors import StartDeferred, StartRefused
from crq.ledger import NotifyState, RunState, TriggerType, schedule_run_id, upload_run_id
from crq.starter import start_run
from crq.triggers import NotOurs, SpecScheduled


def test_an_upload_starts_one_query_and_records_it() -> None:
    w = world()
    # Given a valid spec uploaded under the prefix
    event = upload(w)
    # When the start function handles its event
    result = start_run(event, w.deps)
    # Then one query runs, and the ledger row says which, with the spec version and trigger
    assert result.outcome == "started"
    [query] = w.cleanrooms.started()
    run = w.ledger.only()
    assert run.run_id == upload_run_id(BUCKET, "specs/daily.yaml", event.version_id or "")
    assert (run.state, run.query_id, run.attempt) == (RunState.RUNNING, query.id, 1)
    assert (run.spec_version_id, run.trigger_type, run.trigger_time) == ("v1", TriggerType.S3, T0)
    assert run.membership_id == MEMBERSHIP and run.max_runtime_minutes == 60
    assert run.request is not None and run.request_fingerprint and run.starting_at == T0
    assert run.in_flight
    assert w.metrics.events == ["started"]
    assert w.publisher.messages == []


def test_the_query_is_rendered_at_the_upload_time() -> None:
    w = world()
    event = upload(w, time=datetime(2026, 3, 1, 23, 59, tzinfo=UTC))
    start_run(event, w.deps)
    [query] = w.cleanrooms.started()
    assert "DATE '2026-02-28'" in query.request["sqlParameters"]["queryString"]
    s3 = query.request["resultConfiguration"]["outputConfiguration"]["s3"]
    assert s3["keyPrefix"] == "daily/2026/03/01/"


@pytest.mark.parametrize(
    ("bucket", "key", "why"),
    [
        ("another-bucket", "specs/daily.yaml", "another bucket"),
        (BUCKET, "archive/daily.yaml", "outside the specs prefix"),
        (BUCKET, "specs/team-a/", "a folder marker"),
        (BUCKET, "specs/README.md", "not a .yaml"),
    ],
)
def test_events_that_are_not_ours_are_ignored_quietly(bucket: str, key: str, why: str) -> None:
    w = world()
    result = start_run(upload(w, key=key, bucket=bucket), w.deps)
    assert result.outcome == "ignored" and why in (result.detail or "")
    assert w.ledger.rows == {} and w.cleanrooms.calls == [] and w.publisher.messages == []


def test_a_delete_is_ignored() -> None:
    w = world()
    assert start_run(NotOurs("aws.s3 Object Deleted"), w.deps).outcome == "ignored"
    assert w.ledger.rows == {}


def test_a_duplicate_delivery_starts_no_second_query() -> None:
    w = world()
    event = upload(w)
    start_run(event, w.deps)
    # When S3/EventBridge deliver the same event again
    again = start_run(event, w.deps)
    assert again.outcome == "in_progress"
    assert len(w.cleanrooms.started()) == 1 and w.cleanrooms.count("start") == 1


def test_a_new_version_of_the_same_key_is_a_new_run() -> None:
    w = world()
    start_run(upload(w), w.deps)
    start_run(upload(w), w.deps)
    assert len(w.ledger.rows) == 2 and len(w.cleanrooms.started()) == 2


def test_a_schedule_renders_at_the_scheduled_time_and_reads_the_current_version() -> None:
    w = world()
    w.specs.put("specs/overlap.yaml", template_spec())
    version = w.specs.put("specs/overlap.yaml", template_spec(secret="newer"))
    scheduled = datetime(2026, 2, 2, 6, 0, tzinfo=UTC)
    w.clock.now = scheduled + timedelta(seconds=3)
    trigger = SpecScheduled("specs/overlap.yaml", scheduled, "arn:schedule", "exec-1")
    result = start_run(trigger, w.deps)
    assert result.outcome == "started"
    run = w.ledger.only()
    assert run.run_id == schedule_run_id("specs/overlap.yaml", scheduled)
    assert (run.trigger_type, run.trigger_time, run.spec_version_id) == (
        "schedule",
        scheduled,
        version,
    )
    [query] = w.cleanrooms.started()
    assert query.request["sqlParameters"]["parameters"] == {
        "start_date": "2026-01-26",
        "end_date": "2026-02-02",
        "secret_salt": "newer",
    }
    assert (
        query.request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"]
        == "overlap/2026-02-02/"
    )
    # The same schedule firing twice for that time is one run
    assert start_run(trigger, w.deps).outcome == "in_progress"
    assert len(w.cleanrooms.started()) == 1


def test_parameter_values_are_never_stored() -> None:
    w = world()
    w.specs.put("specs/overlap.yaml", template_spec(secret="planted-secret-value"))
    start_run(SpecScheduled("specs/overlap.yaml", T0, None, None), w.deps)
    row = w.ledger.only()
    assert "planted-secret-value" not in row.model_dump_json()
    assert row.request is not None
    assert row.request["sqlParameters"]["parameters"]["secret_salt"] == "***"


def test_a_bad_spec_is_rejected_notified_and_not_started() -> None:
    w = world()
    bad = sql_spec(extra="maxAttempts: 9\ncolour: blue\n")
    result = start_run(upload(w, body=bad), w.deps)
    assert result.outcome == "rejected"
    assert w.cleanrooms.calls == []
    run = w.ledger.only()
    assert (
        run.state is RunState.ENDED and run.notify_state is NotifyState.SENT and not run.in_flight
    )
    [body] = w.publisher.bodies()
    assert body["event"] == "SPEC_REJECTED"
    assert body["spec"] == {
        "name": "daily",
        "source": f"s3://{BUCKET}/specs/daily.yaml",
        "version": "v1",
    }
    fields = {e["field"] for e in body["errors"]}
    assert {"maxAttempts", "colour"} <= fields
    assert "query" not in body and "result" not in body
    assert w.publisher.messages[0].subject == "crq: daily REJECTED"
    assert w.metrics.events == ["ended:SPEC_REJECTED", "published"]
    # A redelivery does not notify twice
    start_run(upload(w, body=bad, version_id="v1", event_id="again"), w.deps)
    assert len(w.publisher.messages) == 1


def test_a_schedule_naming_a_missing_spec_is_rejected_with_the_reason() -> None:
    w = world()
    start_run(SpecScheduled("specs/gone.yaml", T0, None, None), w.deps)
    [body] = w.publisher.bodies()
    assert body["event"] == "SPEC_REJECTED"
    assert body["errors"] == [{"field": "", "message": "the spec object does not exist"}]


@pytest.mark.parametrize(
    ("code", "waits"),
    [(StartDeferred.QUOTA, None), (StartDeferred.THROTTLED, timedelta(seconds=5))],
)
def test_quota_and_throttling_leave_the_run_queued(code: str, waits: timedelta | None) -> None:
    w = world()
    w.cleanrooms.start_failures = [StartDeferred(code, "not now")]
    result = start_run(upload(w), w.deps)
    assert result.outcome == "queued"
    run = w.ledger.only()
    assert (run.state, run.attempt, run.starting_at) == (RunState.QUEUED, 1, None)
    assert run.retry_after == (T0 + waits if waits else None)
    assert w.metrics.events == ["queued"] and w.publisher.messages == []


def test_a_refused_start_ends_start_failed_and_is_notified() -> None:
    w = world()
    w.cleanrooms.start_failures = [
        StartRefused("ValidationException", "no such table", reason="INVALID_QUERY")
    ]
    result = start_run(upload(w), w.deps)
    assert result.outcome == "start_failed"
    [body] = w.publisher.bodies()
    assert body["event"] == "START_FAILED"
    # the stable code and Clean Rooms' reason apart (contract 1.1)
    assert body["error"] == {
        "code": "ValidationException",
        "reason": "INVALID_QUERY",
        "message": "no such table",
        "retryable": False,
    }
    assert body["query"] == {
        "membershipId": MEMBERSHIP,
        "attempt": 1,
        "maxAttempts": 2,
        "resultPrefix": "s3://crq-results/daily/2026/01/05/",
    }
    assert w.publisher.messages[0].subject == "crq: daily START_FAILED"


def test_an_unknown_start_failure_leaves_the_run_starting_and_propagates() -> None:
    w = world()
    w.cleanrooms.start_failures = [ConnectionError("reset by peer")]
    with pytest.raises(ConnectionError):
        start_run(upload(w), w.deps)
    run = w.ledger.only()
    assert run.state is RunState.STARTING and run.starting_at == T0
    assert w.publisher.messages == []


def test_a_retry_of_a_starting_run_within_the_grace_does_not_start_again() -> None:
    w = world()
    event = upload(w)

    def crash(_query: object) -> None:
        raise TimeoutError("response lost")

    w.cleanrooms.after_create = crash
    with pytest.raises(TimeoutError):
        start_run(event, w.deps)
    w.cleanrooms.after_create = None
    # Lambda retries the event a minute later
    w.clock.advance(seconds=60)
    assert start_run(event, w.deps).outcome == "in_progress"
    assert len(w.cleanrooms.started()) == 1
    # After the grace, a redelivery reconciles: the query that was created is the run's
    w.clock.advance(seconds=61)
    start_run(event, w.deps)
    run = w.ledger.only()
    assert run.state is RunState.RUNNING and run.query_id == w.cleanrooms.started()[0].id
    assert len(w.cleanrooms.started()) == 1


def test_new_runs_wait_behind_older_queued_runs_of_their_membership() -> None:
    w = world()
    w.cleanrooms.start_failures = [StartDeferred(StartDeferred.QUOTA, "full")]
    start_run(upload(w, key="specs/first.yaml"), w.deps)
    w.clock.advance(seconds=1)
    result = start_run(upload(w, key="specs/second.yaml"), w.deps)
    assert result.outcome == "queued" and "behind 1 older" in (result.detail or "")
    assert w.cleanrooms.count("start") == 1


def test_no_start_call_while_crq_queries_fill_the_membership() -> None:
    w = world(membership_query_cap=2)
    for name in ("a", "b"):
        start_run(upload(w, key=f"specs/{name}.yaml"), w.deps)
    result = start_run(upload(w, key="specs/c.yaml"), w.deps)
    assert result.outcome == "queued"
    assert w.cleanrooms.count("start") == 2


def test_other_memberships_do_not_hold_a_run_back() -> None:
    w = world()
    w.cleanrooms.start_failures = [StartDeferred(StartDeferred.QUOTA, "full")]
    start_run(upload(w, key="specs/first.yaml"), w.deps)
    other = sql_spec(membership="0b7d5e21-93c4-4f0a-8e6d-5c1a2f9b4e38")
    assert start_run(upload(w, key="specs/other.yaml", body=other), w.deps).outcome == "started"


def test_spec_pipeline_keys_are_recorded() -> None:
    w = world()
    extra = "name: weekly\nmaxRuntimeMinutes: 15\nmaxAttempts: 3\nnotify:\n  team: media\n"
    start_run(upload(w, body=sql_spec(extra=extra)), w.deps)
    run = w.ledger.only()
    assert (run.spec_name, run.max_runtime_minutes, run.max_attempts) == ("weekly", 15, 3)
    assert run.notify_attributes == {"team": "media"}
    assert json.loads(run.model_dump_json())["notify_attributes"] == {"team": "media"}


def test_a_redelivery_within_the_grace_leaves_an_unanswered_start_alone() -> None:
    w = world()
    event = upload(w)
    # Given a start call whose outcome is unknown (nothing visible in Clean Rooms yet)
    w.cleanrooms.start_failures = [ConnectionError("reset by peer")]
    with pytest.raises(ConnectionError):
        start_run(event, w.deps)
    # When the event is redelivered 30 seconds later
    w.clock.advance(seconds=30)
    result = start_run(event, w.deps)
    # Then the run waits: the call may still take effect
    assert result.outcome == "in_progress"
    assert w.ledger.only().state is RunState.STARTING
    assert w.cleanrooms.count("start") == 1
