"""The adapters: the only code that touches boto3, one module per AWS service.

`build_pipeline` wires the real ones from Settings; the handlers call it once per cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from crq.adapters.cleanrooms import CleanRoomsGateway
from crq.adapters.dynamodb import DynamoLedger
from crq.adapters.s3 import ResultLister, SpecStore
from crq.adapters.sns import SnsPublisher
from crq.metrics import PowertoolsRunMetrics
from crq.ports import Pipeline
from crq.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

# Bounded calls: a hung connection must not eat the function's whole timeout.
_TIMEOUTS = Config(connect_timeout=5, read_timeout=20)
_RETRYING = _TIMEOUTS.merge(Config(retries={"mode": "standard", "max_attempts": 4}))
# StartProtectedQuery is not idempotent: one attempt, the use case handles the unknown outcome.
_ONCE = _TIMEOUTS.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))


def build_pipeline(settings: Settings, metrics: Metrics) -> Pipeline:
    # boto3's default session: both functions' clients share its loaded service models.
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    s3 = session.client("s3", config=_RETRYING)
    return Pipeline(
        settings=settings,
        ledger=DynamoLedger(settings.table_name, session.client("dynamodb", config=_RETRYING)),
        queries=CleanRoomsGateway(
            client=session.client("cleanrooms", config=_RETRYING),
            start_client=session.client("cleanrooms", config=_ONCE),
        ),
        specs=SpecStore(s3),
        results=ResultLister(s3),
        publisher=SnsPublisher(settings.topic_arn, session.client("sns", config=_RETRYING)),
        metrics=PowertoolsRunMetrics(metrics),
    )
