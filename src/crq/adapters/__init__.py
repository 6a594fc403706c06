"""The adapters: the only code that touches boto3, one module per AWS service.

`build_collaborators` wires the real ones from Settings; the handlers call it once per cold start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import boto3
from botocore.config import Config

from crq.adapters.cleanrooms import CleanRoomsGateway, keep_retry_info
from crq.adapters.dynamodb import DynamoLedger
from crq.adapters.s3 import ResultLister, SpecStore
from crq.adapters.sns import SnsPublisher
from crq.metrics import PowertoolsRunMetrics
from crq.ports import Collaborators, utc_now
from crq.preflight import CachedReader
from crq.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

    from crq.schedule_state import ScheduleDeps

# The schedule chain (crq.schedule_state, the Scheduler and spec-state adapters) is imported by
# schedule_deps_for, on the start function's first upload: the track function never needs it.

# Bounded calls: a hung connection must not eat the function's whole timeout.
# A track pass calls from up to Settings.track_workers threads per pool at once.
_TIMEOUTS = Config(connect_timeout=5, read_timeout=20, max_pool_connections=40)
_RETRYING = _TIMEOUTS.merge(Config(retries={"mode": "standard", "max_attempts": 4}))
# StartProtectedQuery is not idempotent: one attempt, the use case handles the unknown outcome.
_ONCE = _TIMEOUTS.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))


# Clients are thread-safe once made, sessions are not: a track pass's workers may ask for clients
# (of one session) at the same moment. Creating one is CPU work, never a network wait.
_CREATING = threading.Lock()
C = TypeVar("C")


class _LazyClient(Generic[C]):
    """A boto3 client created on first use, not at cold start.

    Creating a client costs tens of milliseconds (service model, endpoint rules), and most
    invocations need few of them: a track tick with nothing in flight reads DynamoDB only, a
    start publishes to SNS only when it rejects.
    """

    def __init__(self, make: Callable[[], C]) -> None:
        self._make = make
        self._client: C | None = None

    def __getattr__(self, name: str) -> Any:
        client = self._client
        if client is None:
            with _CREATING:
                if self._client is None:
                    self._client = self._make()
                client = self._client
        return getattr(client, name)


def lazy(make: Callable[[], C]) -> C:
    """The client `make` returns, made on first use; typed as that client (the stub type the
    adapter declares), which the proxy stands in for by forwarding every attribute."""
    return cast(C, _LazyClient(make))


def build_collaborators(settings: Settings, metrics: Metrics) -> Collaborators:
    # The settings name the namespace and service (also when built from a mapping, not os.environ).
    metrics.namespace, metrics.service = settings.metrics_namespace, settings.service_name
    # boto3's default session: both functions' clients share its loaded service models.
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None

    # GetProtectedQuery's error.retry, which older botocore models drop while parsing.
    session.events.register(
        "after-call.cleanrooms.GetProtectedQuery", keep_retry_info, unique_id="crq-retry-info"
    )
    s3 = lazy(lambda: session.client("s3", config=_RETRYING))
    queries = CleanRoomsGateway(
        client=lazy(lambda: session.client("cleanrooms", config=_RETRYING)),
        start_client=lazy(lambda: session.client("cleanrooms", config=_ONCE)),
    )
    return Collaborators(
        settings=settings,
        ledger=DynamoLedger(
            settings.table_name, lazy(lambda: session.client("dynamodb", config=_RETRYING))
        ),
        queries=queries,
        collaboration=CachedReader(queries, clock=utc_now),
        specs=SpecStore(s3),
        results=ResultLister(s3),
        publisher=SnsPublisher(
            settings.topic_arn, lazy(lambda: session.client("sns", config=_RETRYING))
        ),
        metrics=PowertoolsRunMetrics(metrics),
    )


# The schedule use case's collaborators of the current Collaborators (one per cold start).
_SCHEDULE_DEPS: list[tuple[Collaborators, ScheduleDeps]] = []


def schedule_deps_for(collaborators: Collaborators) -> ScheduleDeps:
    """The schedule use case's collaborators, sharing the start use case's clients (S3,
    DynamoDB, SNS), built once per Collaborators; the Scheduler client is created on first use."""
    from crq.adapters.dynamodb import DynamoSpecStates
    from crq.adapters.scheduler import SchedulerGateway
    from crq.schedule_state import ScheduleDeps

    for built, deps in _SCHEDULE_DEPS:
        if built is collaborators:
            return deps
    assert isinstance(collaborators.ledger, DynamoLedger)
    session = boto3.DEFAULT_SESSION
    assert session is not None
    deps = ScheduleDeps(
        settings=collaborators.settings,
        specs=collaborators.specs,
        states=DynamoSpecStates.sharing(collaborators.ledger),
        scheduler=SchedulerGateway(lazy(lambda: session.client("scheduler", config=_RETRYING))),
        publisher=collaborators.publisher,
        clock=collaborators.clock,
    )
    _SCHEDULE_DEPS[:] = [(collaborators, deps)]
    return deps
