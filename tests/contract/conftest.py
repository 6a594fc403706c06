"""One behaviour, two implementations: each contract test runs against the in-memory fake the
unit tests use (tests/unit/pipeline/pipeline_fakes.py) and against the real adapter, on moto and
the local Clean Rooms engine in-process (tests/integration/conftest.py's `pipeline_stack`).

A fake that drifts from its adapter fails here, before a unit test can pass on behaviour the
deployed code does not have. What the suite needs from each side (ending a query, reading what
a subscriber received) is in the small drivers below, one per implementation.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "unit" / "pipeline"))

from contract_support import CleanRooms, Received, Results, Specs, Ticking, Topic  # noqa: E402
from pipeline_fakes import (  # noqa: E402
    BUCKET,
    MEMBERSHIP,
    FakeCleanRooms,
    FakeLedger,
    FakePublisher,
    FakeResults,
    FakeSpecs,
)

from crq.adapters import build_collaborators, cleanrooms  # noqa: E402
from crq.adapters.cleanrooms import CleanRoomsGateway  # noqa: E402
from crq.adapters.dynamodb import DynamoLedger, DynamoSpecStates  # noqa: E402
from crq.adapters.sns import SnsPublisher  # noqa: E402
from crq.ledger import Ledger  # noqa: E402
from crq.ports import Collaborators  # noqa: E402
from crq.schedule_state import SpecStates  # noqa: E402
from crq.settings import Settings  # noqa: E402
from crq_local.engine.testing import release, wait_until_idle  # noqa: E402


def _integration_fixtures() -> Any:
    # pytest imports every conftest.py as the module `conftest`: load this one under its own name.
    spec = importlib.util.spec_from_file_location(
        "crq_integration_fixtures", TESTS / "integration" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_fixtures = _integration_fixtures()
pipeline_stack = _fixtures.pipeline_stack
collaboration = _fixtures.collaboration
IMPLEMENTATIONS = ["fake", "moto"]


@pytest.fixture
def wired(pipeline_stack: Any) -> Collaborators:
    """The real adapters, wired as the functions wire them (lazy clients, retry settings,
    hooks), on the stack's resources."""
    return build_collaborators(Settings.from_env(), Metrics(namespace="crq", service="crq"))


@pytest.fixture(params=IMPLEMENTATIONS)
def ledger(request: pytest.FixtureRequest) -> Ledger:
    if request.param == "fake":
        return FakeLedger()
    real: Collaborators = request.getfixturevalue("wired")
    assert isinstance(real.ledger, DynamoLedger)
    return real.ledger


@pytest.fixture(params=IMPLEMENTATIONS)
def specs(request: pytest.FixtureRequest) -> Specs:
    if request.param == "fake":
        fake = FakeSpecs()
        return Specs(store=fake, bucket=BUCKET, put=lambda key, data: fake.put(key, data))
    stack = request.getfixturevalue("pipeline_stack")
    real: Collaborators = request.getfixturevalue("wired")

    def put(key: str, data: bytes) -> str:
        return str(stack.s3.put_object(Bucket=stack.specs_bucket, Key=key, Body=data)["VersionId"])

    return Specs(store=real.specs, bucket=stack.specs_bucket, put=put)


@pytest.fixture(params=IMPLEMENTATIONS)
def clean_rooms(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> CleanRooms:
    if request.param == "fake":
        fake = FakeCleanRooms(Ticking())

        def start_failing_fake(
            request: dict[str, Any], code: str, message: str, retryable: bool
        ) -> str:
            query_id = fake.start_protected_query(request).id
            error = {"code": code, "message": message, "retryable": retryable}
            fake.end(query_id, "FAILED", error=error)
            return query_id

        return CleanRooms(
            gateway=fake,
            finish=lambda query_id: fake.end(query_id),
            start_failing=start_failing_fake,
            page_size=lambda n: setattr(fake, "page_size", n),
        )
    engine = request.getfixturevalue("pipeline_stack").engine
    gateway = request.getfixturevalue("wired").queries
    assert isinstance(gateway, CleanRoomsGateway)

    # The engine's test controls (crq_local.engine.testing); queries end by themselves, held ones
    # (`-- crq-fault: hold`) once released.
    def finish(query_id: str) -> None:
        release(engine, query_id)
        deadline = time.monotonic() + 10
        while not gateway.get_query(MEMBERSHIP, query_id).ended:
            assert time.monotonic() < deadline, f"query {query_id} did not end"
            time.sleep(0.01)

    def start_failing(request: dict[str, Any], code: str, message: str, retryable: bool) -> str:
        sql = request["sqlParameters"]["queryString"]
        flag = "true" if retryable else "false"
        hint = f'-- crq-fault: fail code={code} message="{message}" retryable={flag}'
        failing = {**request, "sqlParameters": {"queryString": f"{sql}\n{hint}"}}
        query_id = gateway.start_protected_query(failing).id
        assert wait_until_idle(engine, 10)
        return query_id

    return CleanRooms(
        gateway=gateway,
        finish=finish,
        start_failing=start_failing,
        page_size=lambda n: monkeypatch.setattr(cleanrooms, "PAGE_SIZE", n),
    )


@pytest.fixture(params=IMPLEMENTATIONS)
def topic(request: pytest.FixtureRequest) -> Iterator[Topic]:
    if request.param == "fake":
        fake, failing = FakePublisher(), FakePublisher()
        failing.failures = 1_000
        yield Topic(publisher=fake, received=lambda _: fake.received(), unreachable=failing)
        return
    stack = request.getfixturevalue("pipeline_stack")
    real: Collaborators = request.getfixturevalue("wired")
    sns = boto3.client("sns")
    topic_arn = stack.environment["CRQ_TOPIC_ARN"]

    def received(expected: int) -> list[Received]:
        return [
            (n["subject"], n["body"], n["attributes"])
            for n in stack.notifications(expected, timeout=2 if expected else 0.2)
        ]

    missing = topic_arn.rsplit(":", 1)[0] + ":no-such-topic"
    assert isinstance(real.publisher, SnsPublisher)
    yield Topic(
        publisher=real.publisher,
        received=received,
        unreachable=SnsPublisher(missing, sns),
    )


@pytest.fixture(params=IMPLEMENTATIONS)
def results(request: pytest.FixtureRequest) -> Results:
    if request.param == "fake":
        fake = FakeResults()
        results = Results(lister=fake, bucket="crq-results", put=fake.put)
        fake.missing_buckets.add(results.missing_bucket)
        return results
    stack = request.getfixturevalue("pipeline_stack")
    real: Collaborators = request.getfixturevalue("wired")

    def put(uri: str, size: int) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        stack.s3.put_object(Bucket=bucket, Key=key, Body=b"x" * size)

    return Results(lister=real.results, bucket=stack.results_bucket, put=put)


@pytest.fixture
def spec_states(ledger: Ledger) -> SpecStates:
    """The spec-state records that share `ledger`'s table (the schedule use case's store)."""
    if isinstance(ledger, FakeLedger):
        return ledger.states
    assert isinstance(ledger, DynamoLedger)
    return DynamoSpecStates.sharing(ledger)
