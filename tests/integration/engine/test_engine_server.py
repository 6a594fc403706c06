"""The two front doors themselves: the HTTP server (AWS CLI, raw requests, `run`) and the
in-process handler (what it answers, and what it leaves to others)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from crq_local.engine import (
    CollaborationFileError,
    Engine,
    EngineServer,
    RemoteHostRefused,
    Timings,
    load_config,
)
from crq_local.engine.aws import new_session
from crq_local.engine.inprocess import installed
from crq_local.engine.server import make_server, run
from crq_local.engine.testing import EXAMPLE, MEMBERSHIP, NO_RETRIES, OVERLAP_ARN, wait_until_idle

AWS_CLI = Path(sys.executable).parent / "aws"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(load_config(EXAMPLE), members_dir=tmp_path)
    yield engine
    engine.shutdown()


@pytest.fixture
def server(engine: Engine, moto_env: str) -> Iterator[EngineServer]:
    # The engine makes its AWS clients when its server is made: the endpoint is set first.
    with make_server(engine, "127.0.0.1", 0) as server:
        yield server


@pytest.fixture
def moto_env(aws_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_url)
    return aws_url


def call(server: EngineServer, method: str, path: str, body: Any = None) -> tuple[int, dict]:
    """A raw request, as a client other than botocore could send it."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {**json.loads(response.read()), "_type": None}
    except urllib.error.HTTPError as error:
        return error.code, {**json.loads(error.read()), "_type": error.headers["x-amzn-ErrorType"]}


def test_the_aws_cli_runs_a_query_against_the_server(
    engine: Engine, server: EngineServer, moto_env: str
) -> None:
    # Given a results bucket in the moto server
    s3 = new_session().client("s3")
    s3.create_bucket(Bucket="cli-results")

    def aws(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [str(AWS_CLI), "cleanrooms", *args, "--endpoint-url", server.url, "--output", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "AWS_PAGER": ""},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    # When the AWS CLI, unchanged, starts a protected query
    started = aws(
        "start-protected-query",
        "--type",
        "SQL",
        "--membership-identifier",
        MEMBERSHIP,
        "--sql-parameters",
        json.dumps({"analysisTemplateArn": OVERLAP_ARN, "parameters": {"end_date": "2026-03-31"}}),
        "--result-configuration",
        json.dumps(
            {
                "outputConfiguration": {
                    "s3": {"bucket": "cli-results", "keyPrefix": "cli", "resultFormat": "CSV"}
                }
            }
        ),
    )
    query_id = started["protectedQuery"]["id"]
    assert wait_until_idle(engine, 10)
    # Then get-protected-query shows SUCCESS and the result is in S3
    got = aws(
        "get-protected-query",
        "--membership-identifier",
        MEMBERSHIP,
        "--protected-query-identifier",
        query_id,
    )["protectedQuery"]
    assert got["status"] == "SUCCESS"
    assert got["result"]["output"]["s3"]["location"] == f"s3://cli-results/cli/{query_id}/"
    body = s3.get_object(Bucket="cli-results", Key=f"cli/{query_id}/result/result.csv")["Body"]
    assert body.read().decode().splitlines()[0] == (
        '"campaign_id","reached_people","overlapping_customers"'
    )


def test_the_aws_endpoint_can_be_given_instead_of_the_environment(
    aws_url: str, tmp_path: Path
) -> None:
    # No AWS_ENDPOINT_URL: the engine is told where S3 and EventBridge are
    engine = Engine(load_config(EXAMPLE), members_dir=tmp_path, aws_endpoint_url=aws_url)
    s3 = new_session().client("s3", endpoint_url=aws_url)
    s3.create_bucket(Bucket="explicit-results")
    try:
        with make_server(engine) as server:
            client = new_session().client("cleanrooms", endpoint_url=server.url, config=NO_RETRIES)
            query_id = client.start_protected_query(
                type="SQL",
                membershipIdentifier=MEMBERSHIP,
                sqlParameters={"queryString": "SELECT 1 AS one"},
                resultConfiguration={
                    "outputConfiguration": {
                        "s3": {"bucket": "explicit-results", "resultFormat": "CSV"}
                    }
                },
            )["protectedQuery"]["id"]
            assert wait_until_idle(engine, 10)
    finally:
        engine.shutdown()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="explicit-results")["Contents"]]
    assert keys == [f"{query_id}/result/result.csv"]


def test_raw_requests_get_the_model_checks(server: EngineServer) -> None:
    status, body = call(
        server,
        "POST",
        f"/memberships/{MEMBERSHIP}/protectedQueries",
        {
            "type": "SQL",
            "sqlParameters": {"queryString": "SELECT 1", "queryText": "SELECT 2"},
            "resultConfiguration": {"outputConfiguration": {"s3": {"bucket": "b-1"}}},
        },
    )
    assert (status, body["_type"], body["reason"]) == (
        400,
        "ValidationException",
        "FIELD_VALIDATION_FAILED",
    )
    names = {f["name"] for f in body["fieldList"]}
    assert names == {
        "sqlParameters.queryText",
        "resultConfiguration.outputConfiguration.s3.resultFormat",
    }
    status, body = call(server, "POST", f"/memberships/{MEMBERSHIP}/protectedQueries", [1])
    assert (status, body["_type"]) == (400, "ValidationException")


def test_the_error_says_whether_a_retry_may_help(
    engine: Engine, server: EngineServer, moto_env: str
) -> None:
    # botocore's model of this API version drops error.retry; the wire carries it
    status, body = call(
        server,
        "POST",
        f"/memberships/{MEMBERSHIP}/protectedQueries",
        {
            "type": "SQL",
            "sqlParameters": {"queryString": "SELECT 1 -- crq-fault: fail retryable=true"},
            "resultConfiguration": {
                "outputConfiguration": {"s3": {"bucket": "b-1", "resultFormat": "CSV"}}
            },
        },
    )
    assert status == 200
    query_id = body["protectedQuery"]["id"]
    assert wait_until_idle(engine, 10)
    _, body = call(server, "GET", f"/memberships/{MEMBERSHIP}/protectedQueries/{query_id}")
    assert body["protectedQuery"]["error"]["retry"] == {"retryable": True}
    assert isinstance(body["protectedQuery"]["createTime"], float)  # epoch seconds


def test_operations_the_engine_does_not_implement(server: EngineServer) -> None:
    client = new_session().client("cleanrooms", endpoint_url=server.url, config=NO_RETRIES)
    with pytest.raises(client.exceptions.ClientError) as caught:
        client.list_collaborations()
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "ListCollaborations" in caught.value.response["Error"]["Message"]
    status, body = call(server, "GET", "/no/such/route")
    assert (status, body["_type"]) == (400, "UnknownOperationException")


def test_run_serves_until_stopped(tmp_path: Path) -> None:
    ready: list[EngineServer] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        kwargs={
            "config_path": EXAMPLE,
            "port": 0,
            "timings": Timings.fast(),
            "on_ready": ready.append,
            "stop": stop,
        },
    )
    thread.start()
    try:
        for _ in range(200):
            if ready:
                break
            thread.join(0.05)
        (server,) = ready
        client = new_session().client("cleanrooms", endpoint_url=server.url, config=NO_RETRIES)
        assert client.get_membership(membershipIdentifier=MEMBERSHIP)["membership"]["id"] == (
            MEMBERSHIP
        )
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(OSError):  # the port is closed again
        urllib.request.urlopen(server.url + "/memberships", timeout=2)


def test_run_refuses_bad_input_before_listening(tmp_path: Path) -> None:
    with pytest.raises(RemoteHostRefused):
        run(EXAMPLE, host="0.0.0.0", port=0)
    bad = tmp_path / "collaboration.yaml"
    bad.write_text("accountId: '1'\ncollaborations: []\n")
    with pytest.raises(CollaborationFileError) as caught:
        run(bad, port=0)
    assert str(bad) in str(caught.value)
    assert "accountId" in str(caught.value)


def test_in_process_only_answers_what_it_implements(engine: Engine) -> None:
    with mock_aws(), installed(engine):
        client = boto3.client("cleanrooms", region_name="us-east-1")
        assert client.get_membership(membershipIdentifier=MEMBERSHIP)["membership"]["id"] == (
            MEMBERSHIP
        )
        # ListCollaborations is not the engine's: moto's cleanrooms backend answers it
        assert client.list_collaborations()["collaborationList"] == []


def test_in_process_leaves_explicit_endpoints_alone(engine: Engine, tmp_path: Path) -> None:
    other = Engine(load_config(EXAMPLE), members_dir=tmp_path / "other")
    with make_server(other, "127.0.0.1", 0) as server, mock_aws(), installed(engine):
        try:
            client = new_session().client("cleanrooms", endpoint_url=server.url, config=NO_RETRIES)
            client.start_protected_query(
                type="SQL",
                membershipIdentifier=MEMBERSHIP,
                sqlParameters={"queryString": "SELECT 1 -- crq-fault: hold"},
                resultConfiguration={
                    "outputConfiguration": {"s3": {"bucket": "b-1", "resultFormat": "CSV"}}
                },
            )
            assert (len(other.received), len(engine.received)) == (1, 0)
        finally:
            other.shutdown()
