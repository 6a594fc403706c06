"""DynamoLedger: the run ledger in the DynamoDB table `RunsTable` (docs/design.md).

Items are the Run model in camelCase. Scalars are plain attributes (readable in the console);
nested values (the redacted request, the outcome, notify attributes) are JSON strings, which
keeps floats exact without Decimal juggling. The InFlight index attributes (`inFlight`,
`inFlightSince`) are written while the run needs the tracker and left out once its notification
is SENT, which removes it from the sparse index. Every write is conditional on the revision read.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from crq.adapters.aws_errors import error_code
from crq.errors import StaleRun
from crq.ledger import ActiveRun, Run

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

IN_FLIGHT_INDEX = "InFlight"
BY_QUERY_INDEX = "ByQuery"
IN_FLIGHT_FLAG = "1"
IN_FLIGHT_BY_MEMBERSHIP_INDEX = "InFlightByMembership"
# Derived index keys: written from the run's state, never read back as state.
_DERIVED = ("inFlight", "inFlightSince", "inFlightMembership")
# Items of the daily CRPU budget live beside the runs: `budget:<YYYY-MM-DD>`.
BUDGET_ITEM_PREFIX = "budget:"
BUDGET_ITEM_DAYS = 3  # kept a little past their day, then DynamoDB's TTL removes them


def _day_expiry(day: str) -> int:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return int((start + timedelta(days=BUDGET_ITEM_DAYS)).timestamp())


def _structured_fields() -> frozenset[str]:
    """Aliases of Run fields whose values are dicts, lists or models (stored as JSON)."""
    found = set()
    for name, info in Run.model_fields.items():
        annotation = info.annotation
        options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
        for option in options:
            origin = typing.get_origin(option) or option
            if origin in (dict, list) or (
                isinstance(origin, type) and issubclass(origin, BaseModel)
            ):
                found.add(info.alias or name)
    return frozenset(found)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


_JSON_ATTRIBUTES = _structured_fields()
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(run: Run) -> dict[str, Any]:
    """The plain (not yet DynamoDB-typed) item of a run."""
    data = run.model_dump(mode="json", by_alias=True, exclude_none=True)
    item = {
        key: json.dumps(value, separators=(",", ":"), sort_keys=True)
        if key in _JSON_ATTRIBUTES
        else value
        for key, value in data.items()
    }
    if run.in_flight:
        item["inFlight"] = IN_FLIGHT_FLAG
        item["inFlightSince"] = run.in_flight_since
    if run.active_membership:
        item["inFlightMembership"] = run.active_membership
        item["inFlightSince"] = run.in_flight_since
    if run.query_id is None:
        item.pop("queryId", None)
    return item


def from_item(item: dict[str, Any]) -> Run:
    data = {
        key: json.loads(value) if key in _JSON_ATTRIBUTES and isinstance(value, str) else value
        for key, value in item.items()
        if key not in _DERIVED
    }
    return Run.model_validate(data)


class DynamoLedger:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def create(self, run: Run) -> Run | None:
        stored = run.model_copy(update={"revision": 1})
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._typed(to_item(stored)),
                ConditionExpression="attribute_not_exists(runId)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return stored

    def get(self, run_id: str) -> Run | None:
        response = self._client.get_item(
            TableName=self._table, Key={"runId": {"S": run_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(self._plain(item)) if item else None

    def save(self, run: Run) -> Run:
        stored = run.model_copy(update={"revision": run.revision + 1})
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._typed(to_item(stored)),
                ConditionExpression="revision = :read",
                ExpressionAttributeValues={":read": {"N": str(run.revision)}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StaleRun(run.run_id, run.revision) from exc
            raise
        return stored

    def in_flight(self) -> list[Run]:
        return [
            from_item(item)
            for item in self._query(
                IndexName=IN_FLIGHT_INDEX,
                KeyConditionExpression="inFlight = :flag",
                ExpressionAttributeValues={":flag": {"S": IN_FLIGHT_FLAG}},
                ScanIndexForward=True,
            )
        ]

    def find_by_query(self, query_id: str) -> Run | None:
        for item in self._query(
            IndexName=BY_QUERY_INDEX,
            KeyConditionExpression="queryId = :id",
            ExpressionAttributeValues={":id": {"S": query_id}},
        ):
            return from_item(item)
        return None

    def active_in_membership(self, membership_id: str) -> list[ActiveRun]:
        return [
            ActiveRun(
                run_id=item["runId"], state=item["state"], in_flight_since=item["inFlightSince"]
            )
            for item in self._query(
                IndexName=IN_FLIGHT_BY_MEMBERSHIP_INDEX,
                KeyConditionExpression="inFlightMembership = :m",
                ExpressionAttributeValues={":m": {"S": membership_id}},
                ProjectionExpression="runId, #s, inFlightSince",
                ExpressionAttributeNames={"#s": "state"},
                ScanIndexForward=True,
            )
        ]

    # ---- the daily CRPU budget: one counter item per UTC day (docs/preflight.md) -----------

    def add_billed_units(self, day: str, query_id: str, units: float) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"runId": {"S": BUDGET_ITEM_PREFIX + day}},
                UpdateExpression="ADD billedUnits :units, queryIds :query SET expiresAt = :ttl",
                # A query counted once, however often its ending is processed.
                ConditionExpression="attribute_not_exists(queryIds) OR NOT contains(queryIds, :id)",
                ExpressionAttributeValues={
                    ":units": {"N": repr(float(units))},
                    ":query": {"SS": [query_id]},
                    ":id": {"S": query_id},
                    ":ttl": {"N": str(_day_expiry(day))},
                },
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def billed_units(self, day: str) -> float:
        response = self._client.get_item(
            TableName=self._table,
            Key={"runId": {"S": BUDGET_ITEM_PREFIX + day}},
            ProjectionExpression="billedUnits",
            ConsistentRead=True,
        )
        value = (response.get("Item") or {}).get("billedUnits", {}).get("N")
        return float(value) if value else 0.0

    def recent(self, limit: int) -> list[Run]:
        """Up to `limit` runs, newest first, for tools (`crq status`). Scans: never on a hot path."""
        runs: list[Run] = []
        kwargs: dict[str, Any] = {"TableName": self._table}
        while True:
            page = self._client.scan(**kwargs)
            runs.extend(
                from_item(self._plain(item))
                for item in page.get("Items", [])
                if not item["runId"]["S"].startswith(BUDGET_ITEM_PREFIX)
            )
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        runs.sort(key=lambda run: run.created_at, reverse=True)
        return runs[:limit]

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, **kwargs):
            for item in page.get("Items", []):
                yield self._plain(item)

    @staticmethod
    def _typed(item: dict[str, Any]) -> dict[str, Any]:
        return {key: _serializer.serialize(value) for key, value in item.items()}

    @staticmethod
    def _plain(item: dict[str, Any]) -> dict[str, Any]:
        return {key: _deserializer.deserialize(value) for key, value in item.items()}
