"""The adapters against moto (on the template's table) and the local engine, through boto3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from crq.adapters.cleanrooms import CleanRoomsGateway, scrub
from crq.adapters.dynamodb import DynamoLedger, DynamoSpecStates
from crq.adapters.s3 import ResultLister, SpecStore
from crq.adapters.sns import SnsPublisher
from crq.errors import (
    NameClaimed,
    PublishFailed,
    QueryAlreadyEnded,
    QueryNotFound,
    ScheduleRecordFound,
    SpecUnreadable,
    StaleRun,
    StartDeferred,
    StartRefused,
)
from crq.ledger import (
    NotifyState,
    Outcome,
    ResultObject,
    Run,
    RunEvent,
    RunState,
    TriggerType,
)
from crq.schedule_state import DesiredSchedule, SpecState
from crq_local.engine.testing import forget, throttle, wait_until_idle

MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def new_run(run_id: str, created: datetime = T0, **changes: Any) -> Run:
    run = Run(
        run_id=run_id,
        state=RunState.QUEUED,
        created_at=created,
        updated_at=created,
        trigger_type=TriggerType.S3,
        trigger_time=created,
        spec_bucket="b",
        spec_key="specs/x.yaml",
        spec_name="x",
        membership_id=MEMBERSHIP,
        request={"sqlParameters": {"parameters": {"p": "***"}}, "n": 1.5},
        notify_attributes={"team": "media"},
    )
    return run.model_copy(update=changes)


@pytest.fixture
def ledger(pipeline_stack: Any) -> DynamoLedger:
    return DynamoLedger(pipeline_stack.table_name, boto3.client("dynamodb"))


def test_the_ledger_round_trips_a_run_and_refuses_a_second_create(ledger: DynamoLedger) -> None:
    created = ledger.create(new_run("r1"))
    assert created is not None and created.revision == 1
    assert ledger.get("r1") == created
    assert ledger.create(new_run("r1")) is None
    assert ledger.get("missing") is None


def test_a_save_from_a_stale_read_is_refused(ledger: DynamoLedger) -> None:
    created = ledger.create(new_run("r1"))
    assert created is not None
    saved = ledger.save(created.evolve(T0, state=RunState.STARTING))
    assert saved.revision == 2 and ledger.get("r1") == saved
    with pytest.raises(StaleRun):
        ledger.save(created.evolve(T0, state=RunState.STARTING))


def test_in_flight_is_oldest_first_and_sent_runs_leave_it(
    ledger: DynamoLedger, pipeline_stack: Any
) -> None:
    for i in (3, 1, 2):
        ledger.create(new_run(f"r{i}", T0 + timedelta(seconds=i)))
    assert [r.run_id for r in ledger.in_flight()] == ["r1", "r2", "r3"]
    ended = ledger.get("r2")
    assert ended is not None
    outcome = Outcome(
        event=RunEvent.QUERY_SUCCEEDED,
        ended_at=T0,
        statistics={"billedResourceUtilization": {"units": 0.123456789}},
        objects=[ResultObject(uri="s3://r/a.csv", size=3)],
    )
    ended = ledger.save(
        ended.evolve(T0, state=RunState.ENDED, outcome=outcome, notify_state=NotifyState.PENDING)
    )
    assert [r.run_id for r in ledger.in_flight()] == ["r1", "r2", "r3"]
    sent = ledger.save(ended.evolve(T0, notify_state=NotifyState.SENT, expires_at=1_900_000_000))
    assert [r.run_id for r in ledger.in_flight()] == ["r1", "r3"]
    assert ledger.get("r2") == sent and sent.outcome is not None
    assert sent.outcome.crpu_units == 0.123456789  # floats kept exactly
    item = next(i for i in pipeline_stack.items() if i["runId"] == "r2")
    assert (
        "inFlight" not in item
        and "inFlightSince" not in item
        and item["expiresAt"] == 1_900_000_000
    )


def test_runs_are_found_by_their_query(ledger: DynamoLedger) -> None:
    created = ledger.create(new_run("r1"))
    assert created is not None and ledger.find_by_query("q-1") is None
    ledger.save(created.evolve(T0, state=RunState.RUNNING, query_id="q-1"))
    found = ledger.find_by_query("q-1")
    assert found is not None and found.run_id == "r1"


def test_recent_runs_newest_first(ledger: DynamoLedger) -> None:
    for i in range(4):
        ledger.create(new_run(f"r{i}", T0 + timedelta(minutes=i)))
    assert [r.run_id for r in ledger.recent(2)] == ["r3", "r2"]


def test_the_spec_store_reads_the_version_asked_for(pipeline_stack: Any) -> None:
    s3 = boto3.client("s3")
    first = s3.put_object(Bucket=pipeline_stack.specs_bucket, Key="specs/a.yaml", Body=b"one")[
        "VersionId"
    ]
    s3.put_object(Bucket=pipeline_stack.specs_bucket, Key="specs/a.yaml", Body=b"two")
    store = SpecStore(s3)
    old = store.get_spec(pipeline_stack.specs_bucket, "specs/a.yaml", first)
    assert (old.data, old.version_id) == (b"one", first)
    assert store.get_spec(pipeline_stack.specs_bucket, "specs/a.yaml", None).data == b"two"


@pytest.mark.parametrize(
    ("key", "version"), [("specs/none.yaml", None), ("specs/a.yaml", "no-such-version")]
)
def test_a_missing_spec_is_unreadable(pipeline_stack: Any, key: str, version: str | None) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=pipeline_stack.specs_bucket, Key="specs/a.yaml", Body=b"x")
    with pytest.raises(SpecUnreadable, match="does not exist"):
        SpecStore(s3).get_spec(pipeline_stack.specs_bucket, key, version)


def test_an_oversized_spec_is_refused_without_reading_it_whole(pipeline_stack: Any) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=pipeline_stack.specs_bucket, Key="specs/big.yaml", Body=b"#" * 300_000)
    s3.put_object(Bucket=pipeline_stack.specs_bucket, Key="specs/edge.yaml", Body=b"#" * 262_144)
    s3.put_object(Bucket=pipeline_stack.specs_bucket, Key="specs/empty.yaml", Body=b"")
    ranges: list[str] = []

    def record(request: Any, **_: Any) -> None:
        ranges.append(request.headers.get("Range"))

    client = boto3.client("s3")
    client.meta.events.register("before-send.s3.GetObject", record)
    store = SpecStore(client)
    with pytest.raises(
        SpecUnreadable,
        match=r"the file is 300000 bytes; a spec file has at most 262144 bytes \(256 KiB\)",
    ):
        store.get_spec(pipeline_stack.specs_bucket, "specs/big.yaml", None)
    assert ranges == [b"bytes=0-262144"]  # one byte past the limit, never the whole object
    assert len(store.get_spec(pipeline_stack.specs_bucket, "specs/edge.yaml", None).data) == 262_144
    assert store.get_spec(pipeline_stack.specs_bucket, "specs/empty.yaml", None).data == b""


def test_results_are_listed_with_sizes_up_to_a_limit(pipeline_stack: Any) -> None:
    s3 = boto3.client("s3")
    for i in range(3):
        s3.put_object(
            Bucket=pipeline_stack.results_bucket, Key=f"out/q1/part-{i}.csv", Body=b"x" * (i + 1)
        )
    s3.put_object(Bucket=pipeline_stack.results_bucket, Key="out/q1/", Body=b"")
    lister = ResultLister(s3)
    found, more = lister.list_objects(f"s3://{pipeline_stack.results_bucket}/out/q1/", 10)
    assert [(o.uri.rsplit("/", 1)[-1], o.size) for o in found] == [
        ("part-0.csv", 1),
        ("part-1.csv", 2),
        ("part-2.csv", 3),
    ]
    assert more is False
    assert lister.list_objects(f"s3://{pipeline_stack.results_bucket}/out/q1/", 2)[1] is True


def test_a_publish_to_a_missing_topic_is_a_publish_failure(pipeline_stack: Any) -> None:
    publisher = SnsPublisher("arn:aws:sns:us-east-1:123456789012:nope", boto3.client("sns"))
    with pytest.raises(PublishFailed):
        publisher.publish("crq: x SUCCEEDED", "{}", {"event": "QUERY_SUCCEEDED"})


@pytest.fixture
def gateway(pipeline_stack: Any) -> CleanRoomsGateway:
    once = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return CleanRoomsGateway(
        client=boto3.client("cleanrooms", config=once),
        start_client=boto3.client("cleanrooms", config=once),
    )


def request(sql: str = "SELECT channel FROM impressions", **extra: Any) -> dict[str, Any]:
    return {
        "type": "SQL",
        "membershipIdentifier": MEMBERSHIP,
        "sqlParameters": {"queryString": sql},
        "resultConfiguration": {
            "outputConfiguration": {"s3": {"resultFormat": "CSV", "bucket": "crq-results"}}
        },
        **extra,
    }


def test_the_gateway_starts_lists_and_gets_queries(
    gateway: CleanRoomsGateway, pipeline_stack: Any
) -> None:
    started = gateway.start_protected_query(request())
    assert started.status == "SUBMITTED" and started.membership_id == MEMBERSHIP
    assert wait_until_idle(pipeline_stack.engine, 10)
    [listed] = gateway.list_queries(MEMBERSHIP, None)
    assert listed.id == started.id and listed.ended
    got = gateway.get_query(MEMBERSHIP, started.id)
    assert got.status == "SUCCESS" and got.result_output and got.statistics
    assert got.sql_parameters == {"queryString": "SELECT channel FROM impressions"}


def test_the_gateway_pages_only_as_far_back_as_needed(
    gateway: CleanRoomsGateway, pipeline_stack: Any
) -> None:
    from crq.adapters import cleanrooms

    ids = []
    for _ in range(5):
        ids.append(gateway.start_protected_query(request()).id)
        assert wait_until_idle(pipeline_stack.engine, 10)
    calls: list[str] = []
    gateway._client.meta.events.register(
        "before-call.cleanrooms.ListProtectedQueries", lambda **_: calls.append("list")
    )  # type: ignore[attr-defined]
    original = cleanrooms.PAGE_SIZE
    cleanrooms.PAGE_SIZE = 2
    try:
        newest_two = gateway.list_queries(MEMBERSHIP, None)
        assert [q.id for q in newest_two] == ids[:-3:-1] and calls == ["list"]
        oldest = gateway.get_query(MEMBERSHIP, ids[0]).create_time
        calls.clear()
        everything = gateway.list_queries(MEMBERSHIP, oldest)
        assert {q.id for q in everything} == set(ids) and calls == ["list"] * 3
    finally:
        cleanrooms.PAGE_SIZE = original


def test_start_errors_become_domain_errors(gateway: CleanRoomsGateway, pipeline_stack: Any) -> None:
    with pytest.raises(StartRefused) as refused:
        gateway.start_protected_query(
            request(membershipIdentifier="00000000-0000-4000-8000-000000000000")
        )
    assert refused.value.code.startswith(
        ("ResourceNotFoundException", "AccessDeniedException", "ValidationException")
    )
    throttle(pipeline_stack.engine, requests=1, seconds=60, operations=["StartProtectedQuery"])
    with pytest.raises(StartDeferred) as deferred:
        gateway.start_protected_query(request())
    assert deferred.value.code == StartDeferred.THROTTLED


def test_the_sixth_query_of_a_membership_is_deferred(gateway: CleanRoomsGateway) -> None:
    held = "SELECT channel FROM impressions -- crq-fault: hold"
    for _ in range(5):
        gateway.start_protected_query(request(held))
    with pytest.raises(StartDeferred) as deferred:
        gateway.start_protected_query(request(held))
    assert deferred.value.code == StartDeferred.QUOTA


def test_get_and_cancel_errors_become_domain_errors(
    gateway: CleanRoomsGateway, pipeline_stack: Any
) -> None:
    done = gateway.start_protected_query(request())
    assert wait_until_idle(pipeline_stack.engine, 10)
    with pytest.raises(QueryAlreadyEnded):
        gateway.cancel_query(MEMBERSHIP, done.id)
    forget(pipeline_stack.engine, done.id)
    with pytest.raises(QueryNotFound):
        gateway.get_query(MEMBERSHIP, done.id)
    held = gateway.start_protected_query(
        request("SELECT channel FROM impressions -- crq-fault: hold")
    )
    gateway.cancel_query(MEMBERSHIP, held.id)
    assert wait_until_idle(pipeline_stack.engine, 10)
    assert gateway.get_query(MEMBERSHIP, held.id).status == "CANCELLED"


def test_scrub_hides_parameter_values_in_messages() -> None:
    assert scrub("cannot convert 'tok-123' to INT", ["tok-123"]) == "cannot convert '***' to INT"
    assert (
        scrub("line 1, column 10: value 1 invalid", ["1"])
        == "line ***, column 10: value *** invalid"
    )
    assert scrub("nothing here", []) == "nothing here"


def test_spec_name_claims_are_conditional_and_stay_out_of_the_indexes(
    ledger: DynamoLedger,
) -> None:
    # The first key claims the name; claiming again is fine; another key learns the owner
    assert ledger.claim_spec_name("weekly", "specs/a.yaml", T0) is None
    assert ledger.claim_spec_name("weekly", "specs/a.yaml", T0) is None
    assert ledger.claim_spec_name("weekly", "specs/b.yaml", T0) == "specs/a.yaml"
    # Passing it on needs the owner read: a stale owner changes nothing
    ledger.pass_spec_name("weekly", "specs/x.yaml", "specs/b.yaml", T0)
    assert ledger.claim_spec_name("weekly", "specs/b.yaml", T0) == "specs/a.yaml"
    ledger.pass_spec_name("weekly", "specs/a.yaml", "specs/b.yaml", T0)
    assert ledger.claim_spec_name("weekly", "specs/a.yaml", T0) == "specs/b.yaml"
    # Claims are not runs: no index the tracker or `crq status` reads holds them
    ledger.create(new_run("r1"))
    assert [r.run_id for r in ledger.in_flight()] == ["r1"]
    assert [r.run_id for r in ledger.recent(10, now=T0)] == ["r1"]


def test_a_run_created_with_its_name_claim_is_one_transaction_of_both_or_neither(
    ledger: DynamoLedger,
) -> None:
    # A free name: the run and the claim are written together
    created = ledger.create(new_run("r1", spec_key="specs/a.yaml"), claim_name="weekly")
    assert created is not None and ledger.get("r1") == created
    assert ledger.claim_spec_name("weekly", "specs/b.yaml", T0) == "specs/a.yaml"
    # The same key again (its next run): the claim it holds is no obstacle
    assert ledger.create(new_run("r2", spec_key="specs/a.yaml"), claim_name="weekly")
    # Another key: nothing is written, and the holder is named
    with pytest.raises(NameClaimed) as refused:
        ledger.create(new_run("r3", spec_key="specs/b.yaml"), claim_name="weekly")
    assert refused.value.owner == "specs/a.yaml" and ledger.get("r3") is None
    # A run that exists: None, as without a claim, and the claim is left as it was
    assert ledger.create(new_run("r1", spec_key="specs/b.yaml"), claim_name="other") is None
    assert ledger.claim_spec_name("other", "specs/c.yaml", T0) is None


def test_a_run_created_on_no_schedule_to_sync_checks_the_spec_state_record_in_its_write(
    ledger: DynamoLedger,
) -> None:
    states = DynamoSpecStates.sharing(ledger)

    def record(state_id: str, desired: DesiredSchedule | None, applied: bool) -> None:
        states.claim(
            SpecState(
                state_id=state_id,
                bucket="b",
                spec_key="specs/x.yaml",
                spec_name="x",
                sequencer="1",
                desired=desired,
                applied=applied,
                updated_at=T0,
            )
        )

    weekly = DesiredSchedule(expression="cron(0 6 ? * MON *)", timezone="UTC")
    record("spec:scheduled", weekly, applied=True)
    record("spec:removed", None, applied=True)
    record("spec:unfinished", None, applied=False)
    # No record, or one applied without a schedule: the run is created
    assert ledger.create(new_run("r1"), no_schedule_record="spec:none") is not None
    assert ledger.create(new_run("r2"), no_schedule_record="spec:removed") is not None
    # A schedule to remove, or an event not yet applied: nothing is written, not even the claim
    for state_id in ("spec:scheduled", "spec:unfinished"):
        with pytest.raises(ScheduleRecordFound):
            ledger.create(new_run("r3"), claim_name=state_id, no_schedule_record=state_id)
        assert ledger.get("r3") is None
        assert ledger.claim_spec_name(state_id, "specs/other.yaml", T0) is None
