"""The AWS calls one run costs, upload to notification, through the real handlers.

A count, not a time: each call is a round trip and a line on the bill. The start path creates
the run in the state it will have (no read first) with its spec's name claim in the same
transaction, from the spec version the schedule sync already read, and an ending run is ended
and claimed in one conditional write; `make bench` prints the same count.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from crq_local.engine.testing import wait_until_idle

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
SPEC = f"""\
membershipIdentifier: {MEMBERSHIP}
sqlParameters:
  queryString: SELECT channel, COUNT(*) AS n FROM impressions GROUP BY channel
resultConfiguration:
  outputConfiguration:
    s3: {{resultFormat: CSV, bucket: crq-results, keyPrefix: budget}}
"""
TRACKER_READS = {"cleanrooms.ListProtectedQueries", "cleanrooms.GetProtectedQuery"}
# Preflight's Clean Rooms reads are cached per container (a few per burst, not per run): they
# have a budget of their own (docs/preflight.md, `make bench`).
PREFLIGHT_READS = {
    "cleanrooms.GetMembership",
    "cleanrooms.GetAnalysisTemplate",
    "cleanrooms.GetCollaborationAnalysisTemplate",
    "cleanrooms.ListMembers",
}
# Items about the spec, not the run: its spec-state record (schedule ordering, issue 8) and its
# name claim (one live spec per name, issue 13).
SPEC_RECORDS = ("spec:", "specName:")


@pytest.fixture
def calls(functions: Any) -> Iterator[Counter[str]]:
    """Every AWS call the functions make (their clients share boto3's default session)."""
    from handlers import start

    start.collaborators()  # the default session exists once a pipeline is built
    session = boto3.DEFAULT_SESSION
    assert session is not None
    counted: Counter[str] = Counter()
    lock = threading.Lock()

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        item = (params.get("Item") or params.get("Key") or {}) if "dynamodb" in name else {}
        if item.get("runId", {}).get("S", "").startswith(SPEC_RECORDS):
            name += " (spec record)"
        with lock:
            counted[name] += 1

    session.events.register("provide-client-params", count, unique_id="crq-call-budget")
    try:
        yield counted
    finally:
        session.events.unregister("provide-client-params", unique_id="crq-call-budget")


def test_a_run_costs_eleven_calls_from_upload_to_notification(
    pipeline_stack: Any, functions: Any, calls: Counter[str]
) -> None:
    # Given an uploaded spec (the upload itself is not the functions' call)
    event = pipeline_stack.upload("specs/budget.yaml", SPEC)
    calls.clear()

    # When it starts, its query ends and the status event reaches the track function
    started = functions.start(event)
    assert started["outcome"] == "started"
    assert wait_until_idle(pipeline_stack.engine, 10)
    [status] = pipeline_stack.status_events()
    assert functions.track(status)["notified"] == 1

    # Then the run: the spec read once (the schedule sync's read serves the start), no read
    # before the run is created, and the run created STARTING in one transaction with its
    # spec's name claim and the check that its spec-state record holds no schedule to remove;
    # one write to record the query, two to end it (ended+claimed, then sent)
    counted = {k: v for k, v in calls.items() if k not in TRACKER_READS | PREFLIGHT_READS}
    assert counted["s3.GetObject"] == 1, counted
    assert "dynamodb.GetItem" not in counted, counted
    assert counted["dynamodb.TransactWriteItems"] == 1, counted
    assert counted["dynamodb.PutItem"] == 3, counted
    # No call about the spec's own records outside that transaction
    assert not [k for k in counted if k.endswith("(spec record)")], counted
    # The start path and the status-event path query the membership's in-flight index (the
    # cap and the queue), and the event path finds its run by query id. Issue 10's goal of at
    # most 8 calls per run is not met: this pins where the count stands, so it only falls.
    assert sum(counted.values()) <= 11, counted
