"""The functions' boto3 clients are made on first use, once, whichever thread asks first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics
from pipeline_fakes import settings

from crq.adapters import build_collaborators, lazy


class Client:
    region = "us-east-1"


def counting(made: list[Client]) -> Client:
    made.append(Client())
    time.sleep(0.01)  # a client takes a while to make: the window two threads could share
    return made[-1]


def test_a_client_is_made_on_first_use_and_only_once() -> None:
    made: list[Client] = []
    client = lazy(lambda: counting(made))
    assert made == []
    assert client.region == "us-east-1"
    assert client.region == "us-east-1"
    assert len(made) == 1


def test_threads_asking_at_once_share_one_client() -> None:
    made: list[Client] = []
    client = lazy(lambda: counting(made))
    ready = threading.Barrier(8)

    def ask() -> None:
        ready.wait()
        assert client.region == "us-east-1"

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1


def test_wiring_makes_no_client_until_an_adapter_calls_aws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    services: list[str] = []
    real_client = session.client

    def client(service: str, **kwargs: Any) -> Any:
        services.append(service)
        return real_client(service, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(session, "client", client)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    wired = build_collaborators(settings(), Metrics(namespace="crq", service="crq"))
    assert services == []
    # A track tick with nothing in flight reads the ledger: DynamoDB's client, and no other
    assert wired.ledger._client.meta.service_model.service_name == "dynamodb"  # type: ignore[attr-defined]
    assert services == ["dynamodb"]


def test_the_track_functions_cold_start_loads_only_what_a_tick_needs() -> None:
    # The track function's init (import and wiring, as `make bench` times it) loads neither
    # the spec chain, nor the schedule chain the start function keeps, nor the notification
    # contract: each is imported where it is first used (a queued run started, an upload's
    # schedule synced, a run ended).
    code = (
        "import sys, handlers.track;"
        "handlers.track.collaborators();"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('crq.spec.', 'crq.schedule', 'crq.notification', 'crq.adapters.scheduler', 'yaml'))))"
    )
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "AWS_DEFAULT_REGION": "us-east-1",
        "CRQ_TABLE_NAME": "t",
        "CRQ_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t",
        "CRQ_SPECS_BUCKET": "b",
        "POWERTOOLS_SERVICE_NAME": "crq",
        "POWERTOOLS_METRICS_NAMESPACE": "crq",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment
    )
    assert done.returncode == 0, done.stderr
    # crq.spec.limits: the spec size cap, which the S3 adapter shares (a constant)
    assert done.stdout.strip() == "['crq.spec.limits']"
