"""moto's DynamoDB as the local stack uses it (crq_local.sandbox.moto_dynamodb): the fast item
responses are the documents moto's own serializer writes, and each request is atomic."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from crq_local.sandbox.moto_dynamodb import atomic_requests, fast_item_responses

TABLE = "runs"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _table(client: Any) -> None:
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "runId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "runId", "AttributeType": "S"},
            {"AttributeName": "group", "AttributeType": "S"},
            {"AttributeName": "since", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByGroup",
                "KeySchema": [
                    {"AttributeName": "group", "KeyType": "HASH"},
                    {"AttributeName": "since", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["state"]},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _item(i: int) -> dict[str, Any]:
    return {
        "runId": {"S": f"r{i:03d}"},
        "group": {"S": "g" if i % 3 else "h"},
        "since": {"S": f"2026-01-01T00:00:{i:02d}"},
        "state": {"S": "QUEUED"},
        "revision": {"N": str(i)},
        "units": {"N": "0.123456789"},
        "blob": {"B": bytes([0, 1, 2, i % 256]) + b"\xff"},
        "tags": {"SS": ["a", "b"]},
        "sizes": {"NS": ["1", "2.5"]},
        "flags": {"L": [{"BOOL": True}, {"NULL": True}, {"M": {"k": {"S": "v"}}}]},
        "empty": {"M": {}},
    }


def _session(client: Any) -> list[tuple[str, int, frozenset[str], bytes]]:
    """Every operation of the script below: (operation, status, header names, body)."""
    _table(client)
    responses: list[tuple[str, int, frozenset[str], bytes]] = []

    def record(http_response: Any, model: Any, **_: Any) -> None:
        responses.append(
            (
                model.name,
                http_response.status_code,
                frozenset(k.lower() for k in http_response.headers),
                http_response.content,
            )
        )

    client.meta.events.register("after-call.dynamodb", record)
    for i in range(12):
        client.put_item(TableName=TABLE, Item=_item(i), ReturnConsumedCapacity="TOTAL")
    key = {"runId": {"S": "r001"}}
    client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
    client.get_item(TableName=TABLE, Key={"runId": {"S": "missing"}})
    client.put_item(TableName=TABLE, Item=_item(1), ReturnValues="ALL_OLD")
    client.query(
        TableName=TABLE,
        KeyConditionExpression="runId = :r",
        ExpressionAttributeValues={":r": {"S": "r002"}},
    )
    for page in client.get_paginator("query").paginate(
        TableName=TABLE,
        IndexName="ByGroup",
        KeyConditionExpression="#g = :g",
        ExpressionAttributeNames={"#g": "group"},
        ExpressionAttributeValues={":g": {"S": "g"}},
        PaginationConfig={"PageSize": 3},
    ):
        assert page["Items"]
    client.query(
        TableName=TABLE,
        IndexName="ByGroup",
        KeyConditionExpression="#g = :g",
        ExpressionAttributeNames={"#g": "group", "#s": "state"},
        ExpressionAttributeValues={":g": {"S": "h"}},
        ProjectionExpression="runId, #s",
        ScanIndexForward=False,
        ReturnConsumedCapacity="INDEXES",
    )
    client.scan(TableName=TABLE, Limit=5)
    client.scan(TableName=TABLE, Select="COUNT")
    client.batch_get_item(
        RequestItems={TABLE: {"Keys": [key, {"runId": {"S": "r007"}}, {"runId": {"S": "nope"}}]}}
    )
    client.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="ADD units :u SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":u": {"N": "1"}, ":s": {"S": "RUNNING"}},
        ReturnValues="ALL_NEW",
    )
    client.delete_item(TableName=TABLE, Key={"runId": {"S": "r011"}}, ReturnValues="ALL_OLD")
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": _item(20)}},
            {
                "ConditionCheck": {
                    "TableName": TABLE,
                    "Key": key,
                    "ConditionExpression": "revision = :n",
                    "ExpressionAttributeValues": {":n": {"N": "1"}},
                }
            },
        ]
    )
    client.transact_get_items(TransactItems=[{"Get": {"TableName": TABLE, "Key": key}}])
    client.batch_write_item(
        RequestItems={TABLE: [{"PutRequest": {"Item": _item(30)}}, {"DeleteRequest": {"Key": key}}]}
    )
    with pytest.raises(ClientError):  # errors keep moto's own path
        client.put_item(
            TableName=TABLE,
            Item=_item(2),
            ConditionExpression="attribute_not_exists(runId)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    return responses


def _run(*patches: Callable[[], Any]) -> list[tuple[str, int, frozenset[str], bytes]]:
    with mock_aws(), contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch())
        return _session(boto3.client("dynamodb"))


def test_fast_item_responses_are_the_documents_motos_serializer_writes() -> None:
    plain = _run()
    fast = _run(fast_item_responses)
    assert [r[0] for r in fast] == [r[0] for r in plain]
    for (operation, status, headers, body), (_, fast_status, fast_headers, fast_body) in zip(
        plain, fast, strict=True
    ):
        assert (operation, fast_status, fast_headers) == (operation, status, headers)
        assert json.loads(fast_body) == json.loads(body), operation


def test_fast_item_responses_are_undone_on_exit() -> None:
    from moto.dynamodb.responses import DynamoResult

    before = DynamoResult.execute_result
    with fast_item_responses():
        assert DynamoResult.execute_result is not before
    assert DynamoResult.execute_result is before


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws(), atomic_requests():
        client = boto3.client("dynamodb")
        _table(client)
        yield client


def test_of_racing_conditional_creates_exactly_one_wins(dynamodb: Any) -> None:
    won: list[int] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        barrier.wait()
        try:
            dynamodb.put_item(
                TableName=TABLE,
                Item={**_item(1), "revision": {"N": str(i)}},
                ConditionExpression="attribute_not_exists(runId)",
            )
        except ClientError:
            return
        won.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    item = dynamodb.get_item(TableName=TABLE, Key={"runId": {"S": "r001"}})["Item"]
    assert item["revision"] == {"N": str(won[0])}


def test_a_cancelled_transaction_leaves_its_items_and_every_other_as_they_were(
    dynamodb: Any,
) -> None:
    dynamodb.put_item(TableName=TABLE, Item=_item(1))
    dynamodb.put_item(TableName=TABLE, Item=_item(5))
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**_item(1), "state": {"S": "ENDED"}}}},
                {"Put": {"TableName": TABLE, "Item": _item(2)}},
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": _item(5),
                        "ConditionExpression": "attribute_not_exists(runId)",
                    }
                },
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    items = {i["runId"]["S"]: i for i in dynamodb.scan(TableName=TABLE)["Items"]}
    assert sorted(items) == ["r001", "r005"]
    assert items["r001"]["state"] == {"S": "QUEUED"}
