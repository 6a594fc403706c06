"""The deployed pipeline, in-process: the real handlers and adapters, moto, the local engine.

Each test plays Lambda's part: the start function gets the event S3/EventBridge or the Scheduler
would deliver (a sample from events/), the track function gets the engine's aws.cleanrooms
events (through the template's rule) and the backstop tick. Assertions are on what a user sees:
the messages on a queue subscribed to the topic, the ledger rows, what the engine received.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crq.tracker import track_in_flight
from crq_local.engine.testing import release, wait_until_idle

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
OVERLAP_ARN = (
    f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}"
    "/analysistemplate/3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64"
)
UPLOAD_TIME = "2026-01-05T06:00:00Z"  # the sample event's time
EVENTS = Path(__file__).resolve().parents[3] / "events"

OVERLAP_SPEC = f"""\
name: weekly-overlap
membershipIdentifier: {MEMBERSHIP}
sqlParameters:
  analysisTemplateArn: {OVERLAP_ARN}
  parameters:
    start_date: "{{{{ run_date - 7d }}}}"
    end_date: "{{{{ run_date }}}}"
resultConfiguration:
  outputConfiguration:
    s3:
      resultFormat: CSV
      bucket: crq-results
      keyPrefix: "weekly-overlap/{{{{ run_date }}}}/"
notify:
  team: media
"""


def sql_spec(sql: str, name: str = "channels", extra: str = "") -> str:
    return (
        f"name: {name}\n"
        f"membershipIdentifier: {MEMBERSHIP}\n"
        "sqlParameters:\n"
        f"  queryString: {json.dumps(sql)}\n"
        "resultConfiguration:\n"
        "  outputConfiguration:\n"
        "    s3: {resultFormat: CSV, bucket: crq-results, keyPrefix: '" + name + "/'}\n" + extra
    )


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


CHANNELS = (
    "SELECT channel, COUNT(*) AS impressions FROM impressions GROUP BY channel ORDER BY channel"
)


def settle(stack: Any, functions: Any) -> None:
    """Let the engine finish, then deliver its status events to the track function."""
    assert wait_until_idle(stack.engine, 10), "the engine did not go idle"
    for event in stack.status_events():
        functions.track(event)


def test_a_spec_upload_ends_in_a_query_succeeded_message_listing_the_results(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given a spec uploaded under specs/
    event = pipeline_stack.upload("specs/weekly-overlap.yaml", OVERLAP_SPEC)
    # When the start function gets its Object Created event, and the track function the status events
    started = functions.start(event)
    settle(pipeline_stack, functions)

    # Then one query ran, with the dates of the upload time
    assert started["outcome"] == "started"
    [received] = pipeline_stack.engine.received
    assert received.request["sqlParameters"]["parameters"] == {
        "start_date": "2025-12-29",
        "end_date": "2026-01-05",
    }
    # And the subscriber got one QUERY_SUCCEEDED message naming the files written
    [message] = pipeline_stack.notifications(1)
    assert message["subject"] == "crq: weekly-overlap SUCCEEDED"
    assert message["attributes"] == {
        "event": "QUERY_SUCCEEDED",
        "status": "SUCCEEDED",
        "membershipId": MEMBERSHIP,
        "specName": "weekly-overlap",
        "team": "media",
    }
    body = message["body"]
    assert body["event"] == "QUERY_SUCCEEDED" and body["version"] == "1.1"
    assert body["query"]["id"] == started["query_id"] and body["query"]["status"] == "SUCCESS"
    assert body["spec"] == {
        "name": "weekly-overlap",
        "source": f"s3://{pipeline_stack.specs_bucket}/specs/weekly-overlap.yaml",
        "version": event["detail"]["object"]["version-id"],
    }
    assert body["trigger"] == {"type": "s3", "time": UPLOAD_TIME}
    keys = pipeline_stack.result_keys("weekly-overlap/2026-01-05/")
    assert keys, "the engine wrote no result"
    listed = {o["uri"]: o["size"] for o in body["result"]["objects"]}
    assert set(listed) == {f"s3://crq-results/{key}" for key in keys}
    assert all(size > 0 for size in listed.values())
    assert body["result"]["output"]["s3"]["location"].startswith(
        "s3://crq-results/weekly-overlap/2026-01-05/"
    )
    assert body["statistics"]["totalDurationInMillis"] >= 0
    assert body["statistics"]["billedResourceUtilization"]["units"] > 0

    # And the ledger row is ended, sent, out of the InFlight index, with a TTL
    [item] = pipeline_stack.items()
    assert (item["state"], item["notifyState"], item["queryId"]) == (
        "ENDED",
        "SENT",
        started["query_id"],
    )
    assert "inFlight" not in item and "inFlightSince" not in item and item["expiresAt"] > 0
    assert (
        item["triggerType"] == "s3"
        and item["specVersionId"] == event["detail"]["object"]["version-id"]
    )


@pytest.mark.parametrize(
    ("sql", "code", "says"),
    [
        # a column the collaboration does not allow: DuckDB's own error
        ("SELECT device_type FROM impressions", "MALFORMED_QUERY", "device_type"),
        # a failure injected by the engine, as Clean Rooms reports an internal one
        (
            CHANNELS + '\n-- crq-fault: fail code=DATA_SOURCE_UNAVAILABLE message="table offline"',
            "DATA_SOURCE_UNAVAILABLE",
            "table offline",
        ),
    ],
)
def test_a_failing_query_ends_in_query_failed_with_the_engine_error(
    pipeline_stack: Any, functions: Any, sql: str, code: str, says: str
) -> None:
    # Given a spec whose query fails
    event = pipeline_stack.upload("specs/broken.yaml", sql_spec(sql, name="broken"))
    # When it runs and its status events reach the track function
    functions.start(event)
    settle(pipeline_stack, functions)
    # Then the subscriber learns it failed, and why, in Clean Rooms' words
    [message] = pipeline_stack.notifications(1)
    body = message["body"]
    assert message["subject"] == "crq: broken FAILED"
    assert body["event"] == "QUERY_FAILED" and body["query"]["status"] == "FAILED"
    assert body["error"]["code"] == code and says in body["error"]["message"]
    assert body["error"]["retryable"] is False
    assert "result" not in body
    assert len(pipeline_stack.engine.received) == 1  # not retried


def test_a_bad_spec_is_rejected_with_its_field_errors_and_nothing_runs(
    pipeline_stack: Any, functions: Any
) -> None:
    bad = OVERLAP_SPEC.replace("resultFormat: CSV", "resultFormat: XLSX") + "maxAttempts: 0\n"
    result = functions.start(pipeline_stack.upload("specs/weekly-overlap.yaml", bad))
    assert result["outcome"] == "rejected"
    [message] = pipeline_stack.notifications(1)
    assert message["subject"] == "crq: weekly-overlap REJECTED"
    errors = {e["field"]: e["message"] for e in message["body"]["errors"]}
    assert "resultConfiguration.outputConfiguration.s3.resultFormat" in errors
    assert "maxAttempts" in errors
    assert pipeline_stack.engine.received == []
    # A redelivery neither runs nor notifies again
    functions.start(pipeline_stack.upload("specs/other.yaml", "{{ not yaml"))
    assert [m["body"]["event"] for m in pipeline_stack.notifications(2)] == ["SPEC_REJECTED"] * 2


def test_a_missed_status_event_is_caught_by_the_scheduled_track(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given a query whose status events Clean Rooms never delivers
    sql = CHANNELS + "\n-- crq-fault: no-events"
    functions.start(pipeline_stack.upload("specs/quiet.yaml", sql_spec(sql, name="quiet")))
    assert wait_until_idle(pipeline_stack.engine, 10)
    assert pipeline_stack.status_events() == []
    assert pipeline_stack.notifications(0, timeout=0) == []
    # When the track schedule ticks
    summary = functions.track(load_event("track/tick.json"))
    # Then the run is ended and notified all the same
    assert summary["ended"] == 1
    [message] = pipeline_stack.notifications(1)
    assert message["body"]["event"] == "QUERY_SUCCEEDED"


def test_a_schedule_runs_with_the_scheduled_time_rendered(
    pipeline_stack: Any, functions: Any
) -> None:
    pipeline_stack.upload("specs/weekly-overlap.yaml", OVERLAP_SPEC)
    schedule = load_event("start/schedule.json")  # scheduledTime 2026-01-05T06:00:00Z
    schedule["scheduledTime"] = "2026-02-02T06:00:00Z"
    result = functions.start(schedule)
    assert result["outcome"] == "started" and result["run_id"].startswith("schedule:")
    [received] = pipeline_stack.engine.received
    assert received.request["sqlParameters"]["parameters"] == {
        "start_date": "2026-01-26",
        "end_date": "2026-02-02",
    }
    assert (
        received.request["resultConfiguration"]["outputConfiguration"]["s3"]["keyPrefix"]
        == "weekly-overlap/2026-02-02/"
    )
    settle(pipeline_stack, functions)
    [message] = pipeline_stack.notifications(1)
    assert message["body"]["trigger"] == {"type": "schedule", "time": "2026-02-02T06:00:00Z"}
    assert pipeline_stack.result_keys("weekly-overlap/2026-02-02/")
    # The same schedule firing again for the same time runs nothing more
    functions.start(schedule)
    assert len(pipeline_stack.engine.received) == 1


def test_duplicate_deliveries_start_one_query_and_notify_once(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given an upload whose event arrives twice, and a query whose status events arrive twice
    sql = CHANNELS + "\n-- crq-fault: duplicate-events"
    event = pipeline_stack.upload("specs/twice.yaml", sql_spec(sql, name="twice"))
    first, second = functions.start(event), functions.start(event)
    settle(pipeline_stack, functions)
    functions.track({"source": "crq.track"})
    # Then one query, one message
    assert (first["outcome"], second["outcome"]) == ("started", "in_progress")
    assert len(pipeline_stack.engine.received) == 1
    assert [m["body"]["event"] for m in pipeline_stack.notifications(1, timeout=0.5)] == [
        "QUERY_SUCCEEDED"
    ]
    [item] = pipeline_stack.items()
    assert item["revision"] >= 4 and item["attempt"] == 1


@pytest.mark.parametrize(
    ("sample", "ours"),
    [
        ("other-bucket", False),
        ("other-prefix", True),
        ("folder-marker", True),
        ("wrong-extension", True),
        ("../s3-object-deleted", True),  # a spec that never had a schedule: nothing to remove
    ],
)
def test_events_that_are_not_ours_are_ignored_quietly(
    pipeline_stack: Any, functions: Any, sample: str, ours: bool
) -> None:
    event = load_event(f"start/not-ours/{sample}.json")
    if ours:  # in our bucket, so only the key or the kind of event makes it not ours
        event["detail"]["bucket"]["name"] = pipeline_stack.specs_bucket
    assert functions.start(event)["outcome"] == "ignored"
    assert pipeline_stack.items() == [] and pipeline_stack.engine.received == []
    assert pipeline_stack.notifications(0, timeout=0) == []


def test_uploads_beyond_the_cap_queue_and_all_run_five_at_a_time(
    pipeline_stack: Any, functions: Any
) -> None:
    # Given seven specs of one membership uploaded at once, each query held until released
    sql = CHANNELS + "\n-- crq-fault: hold"
    results = [
        functions.start(
            pipeline_stack.upload(f"specs/bulk-{i}.yaml", sql_spec(sql, name=f"bulk-{i}"))
        )
        for i in range(7)
    ]
    # Then five run and two wait, without a refused start
    assert [r["outcome"] for r in results] == ["started"] * 5 + ["queued"] * 2
    assert len(pipeline_stack.engine.received) == 5
    # When the queries finish, the status events free the slots and the queued runs start
    for _ in range(4):
        release(pipeline_stack.engine)
        settle(pipeline_stack, functions)
    assert len(pipeline_stack.engine.received) == 7
    messages = pipeline_stack.notifications(7)
    assert sorted(m["body"]["spec"]["name"] for m in messages) == [f"bulk-{i}" for i in range(7)]
    assert {m["body"]["event"] for m in messages} == {"QUERY_SUCCEEDED"}


def test_a_transient_failure_is_retried_and_the_notification_says_which_attempt(
    pipeline_stack: Any, functions: Any
) -> None:
    sql = CHANNELS + "\n-- crq-fault: fail code=INTERNAL_ERROR retryable=true first=1"
    functions.start(pipeline_stack.upload("specs/flaky.yaml", sql_spec(sql, name="flaky")))
    settle(pipeline_stack, functions)  # attempt 1 fails: the run is queued and started again
    settle(pipeline_stack, functions)  # attempt 2 succeeds
    [message] = pipeline_stack.notifications(1)
    assert message["body"]["event"] == "QUERY_SUCCEEDED"
    assert (message["body"]["query"]["attempt"], message["body"]["query"]["maxAttempts"]) == (2, 2)
    assert len(pipeline_stack.engine.received) == 2


def test_a_lost_start_response_does_not_start_a_second_query(
    pipeline_stack: Any, functions: Any
) -> None:
    from botocore.exceptions import ClientError

    from handlers import track

    # Given a start whose query is created but whose answer is lost
    sql = CHANNELS + "\n-- crq-fault: lost-response"
    event = pipeline_stack.upload("specs/lost.yaml", sql_spec(sql, name="lost"))
    with pytest.raises(ClientError):
        functions.start(event)
    [item] = pipeline_stack.items()
    assert item["state"] == "STARTING"
    # When Lambda retries the event, nothing is started again
    assert functions.start(event)["outcome"] == "in_progress"
    # And once the grace has passed, the track reconciles the run with the query that exists
    later = datetime.now(UTC) + timedelta(minutes=3)
    track_in_flight(dataclasses.replace(track.collaborators(), clock=lambda: later))
    [query] = pipeline_stack.engine.received
    [item] = pipeline_stack.items()
    assert item["state"] in ("RUNNING", "ENDED") and item["queryId"] == query.query_id
    settle(pipeline_stack, functions)
    functions.track({"source": "crq.track"})
    assert [m["body"]["event"] for m in pipeline_stack.notifications(1)] == ["QUERY_SUCCEEDED"]
    assert len(pipeline_stack.engine.received) == 1


def test_a_query_past_its_max_runtime_is_cancelled_and_notified(
    pipeline_stack: Any, functions: Any
) -> None:
    from handlers import track

    sql = CHANNELS + "\n-- crq-fault: hold"
    functions.start(
        pipeline_stack.upload(
            "specs/slow.yaml", sql_spec(sql, name="slow", extra="maxRuntimeMinutes: 5\n")
        )
    )
    later = datetime.now(UTC) + timedelta(minutes=6)
    summary = track_in_flight(dataclasses.replace(track.collaborators(), clock=lambda: later))
    assert summary.cancelled == 1
    settle(pipeline_stack, functions)
    [message] = pipeline_stack.notifications(1)
    assert message["subject"] == "crq: slow CANCELLED"
    assert message["body"]["event"] == "QUERY_CANCELLED"
    assert message["body"]["reason"] == "ran longer than maxRuntimeMinutes (5 minutes)"
    assert message["body"]["query"]["status"] == "CANCELLED"


def test_tracking_many_runs_of_one_membership_costs_one_list_call(
    pipeline_stack: Any, functions: Any
) -> None:
    import boto3

    calls: list[str] = []
    boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
        "before-call.cleanrooms", lambda model, **_: calls.append(model.name)
    )
    # Given five queries of one membership running
    sql = CHANNELS + "\n-- crq-fault: hold no-events"
    for i in range(5):
        functions.start(
            pipeline_stack.upload(f"specs/run-{i}.yaml", sql_spec(sql, name=f"run-{i}"))
        )
    # When the track ticks while they run: one List call, no Get
    calls.clear()
    functions.track({"source": "crq.track"})
    assert calls == ["ListProtectedQueries"]
    # When they have ended: one List call, and one Get per ended query
    release(pipeline_stack.engine)
    assert wait_until_idle(pipeline_stack.engine, 10)
    calls.clear()
    functions.track({"source": "crq.track"})
    assert calls == ["ListProtectedQueries"] + ["GetProtectedQuery"] * 5
    assert len(pipeline_stack.notifications(5)) == 5
