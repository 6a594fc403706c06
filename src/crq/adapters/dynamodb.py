"""DynamoLedger: the run ledger in the DynamoDB table `RunsTable` (docs/design.md).

Items are the Run model in camelCase. Scalars are plain attributes (readable in the console);
nested values (the redacted request, the outcome, notify attributes) are JSON strings, which
keeps floats exact without Decimal juggling. The InFlight index attributes (`inFlight`,
`inFlightSince`) are written while the run needs the tracker and left out once its notification
is SENT, which removes it from the sparse index. Every write is conditional on the revision read.
"""

from __future__ import annotations

import itertools
import json
import time
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from crq.adapters.aws_errors import error_code
from crq.errors import LedgerBusy, NameClaimed, ScheduleRecordFound, StaleRun
from crq.ledger import ActiveRun, Run, in_flight_since

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from crq.schedule_state import SpecState

# crq.schedule_state is imported by DynamoSpecStates where it needs it: only the start function
# keeps spec schedules, and the track function's cold start should not pay for their models.

IN_FLIGHT_INDEX = "InFlight"
BY_QUERY_INDEX = "ByQuery"
IN_FLIGHT_FLAG = "1"
IN_FLIGHT_BY_MEMBERSHIP_INDEX = "InFlightByMembership"
# Recent runs for tools (`crq status`): one partition per year of creation, newest first
# within it, so reading the latest runs never scans the table. Walking back stops at `since`,
# or after the longest retention the template allows (RunRetentionDays <= 3650, 11 years).
# crq writes a few runs a minute at most: a year's partition is far from any throughput limit.
RECENT_INDEX = "Recent"
RECENT_HORIZON_YEARS = 11
# Name claims share the table with runs (no index attributes, so no index holds them).
NAME_CLAIM_PREFIX = "specName:"
# Derived index keys: written from the run's state, never read back as state.
_DERIVED = ("inFlight", "inFlightSince", "inFlightMembership", "recentYear", "recentSince")

# Items of the daily CRPU budget live beside the runs: `budget:<YYYY-MM-DD>`.
BUDGET_ITEM_PREFIX = "budget:"
BUDGET_ITEM_DAYS = 3  # kept a little past their day, then DynamoDB's TTL removes them


# A transaction DynamoDB cancels because another one touched the same item is tried again.
_CONFLICT_ATTEMPTS = 3
# BatchGetItem: at most 100 keys a call; keys DynamoDB leaves unprocessed (throttling) are asked
# again, with backoff, this many times in all.
BATCH_GET_LIMIT = 100
_UNPROCESSED_ATTEMPTS = 4


def _reasons(exc: ClientError, count: int) -> list[dict[str, Any]]:
    """A cancelled transaction's reasons, one per item (empty ones if DynamoDB gave none)."""
    given: list[Any] = list(exc.response.get("CancellationReasons") or [])
    return ([dict(reason) for reason in given] + [{} for _ in range(count)])[:count]


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
    item["recentYear"] = recent_year(run.created_at)
    item["recentSince"] = in_flight_since(run.created_at, run.run_id)  # fixed width: time order
    return item


def recent_year(moment: datetime) -> str:
    """The Recent index's partition of a run created at `moment`: `YYYY`, UTC."""
    return f"{moment.astimezone(UTC):%Y}"


def _years_back(start: datetime, stop: datetime) -> list[str]:
    """`YYYY` from `start`'s year back to `stop`'s, at most RECENT_HORIZON_YEARS."""
    first, last = start.astimezone(UTC).year, stop.astimezone(UTC).year
    return [
        f"{year:04d}" for year in range(first, max(last, first - RECENT_HORIZON_YEARS + 1) - 1, -1)
    ]


def from_item(item: dict[str, Any]) -> Run:
    data = {
        key: json.loads(value) if key in _JSON_ATTRIBUTES and isinstance(value, str) else value
        for key, value in item.items()
        if key not in _DERIVED  # derived from the run, not stored state
    }
    return Run.model_validate(data)


class DynamoLedger:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def create(
        self,
        run: Run,
        *,
        claim_name: str | None = None,
        no_schedule_record: str | None = None,
    ) -> Run | None:
        stored = run.model_copy(update={"revision": 1})
        item = self._typed(to_item(stored))
        if claim_name is not None or no_schedule_record is not None:
            return self._create_in_transaction(stored, item, claim_name, no_schedule_record)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(runId)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return stored

    def _create_in_transaction(
        self, stored: Run, item: dict[str, Any], name: str | None, record: str | None
    ) -> Run | None:
        """The run, its spec's name claim and the spec-state condition in one transaction."""
        run_put = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(runId)",
        }
        writes: list[Any] = [{"Put": run_put}]
        if name is not None:
            claim = {
                "TableName": self._table,
                "Item": self._name_claim(name, stored.spec_key, stored.created_at),
                "ConditionExpression": "attribute_not_exists(runId) OR specKey = :key",
                "ExpressionAttributeValues": {":key": {"S": stored.spec_key}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
            writes.append({"Put": claim})
        if record is not None:
            # What schedule_sync leaves alone for an unscheduled upload: no record, or one
            # applied without a schedule.
            check = {
                "TableName": self._table,
                "Key": {"runId": {"S": record}},
                "ConditionExpression": "attribute_not_exists(runId) OR "
                "(attribute_not_exists(desired) AND applied = :yes)",
                "ExpressionAttributeValues": {":yes": {"BOOL": True}},
            }
            writes.append({"ConditionCheck": check})
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=writes)
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                reasons = _reasons(exc, len(writes))
                run_reason = reasons[0]
                name_reason = reasons[1] if name is not None else {}
                record_reason = reasons[-1] if record is not None else {}
                if run_reason.get("Code") == "ConditionalCheckFailed":
                    return None  # the run exists: a duplicate delivery
                if record is not None and record_reason.get("Code") == "ConditionalCheckFailed":
                    raise ScheduleRecordFound(record) from exc
                if name is not None and name_reason.get("Code") == "ConditionalCheckFailed":
                    owner = (name_reason.get("Item") or {}).get("specKey", {}).get("S")
                    if owner is None:  # not returned: read it
                        owner = self._name_owner(name)
                    if owner is not None and owner != stored.spec_key:
                        raise NameClaimed(name, owner) from exc
                    continue  # released meanwhile: try again
                conflict = {reason.get("Code") for reason in reasons}
                if "TransactionConflict" in conflict and attempt + 1 < _CONFLICT_ATTEMPTS:
                    continue  # another transaction on the same item (a concurrent duplicate)
                raise
            return stored
        raise RuntimeError(f"run {stored.run_id}: its create kept conflicting; retried by Lambda")

    def _name_owner(self, name: str) -> str | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"runId": {"S": NAME_CLAIM_PREFIX + name}},
            ConsistentRead=True,
        ).get("Item")
        return str(item["specKey"]["S"]) if item else None

    def get(self, run_id: str) -> Run | None:
        response = self._client.get_item(
            TableName=self._table, Key={"runId": {"S": run_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(self._plain(item)) if item else None

    def get_many(self, run_ids: list[str]) -> list[Run]:
        found: dict[str, Run] = {}
        for start in range(0, len(run_ids), BATCH_GET_LIMIT):
            keys: Sequence[Mapping[str, Any]] = [
                {"runId": {"S": run_id}} for run_id in run_ids[start : start + BATCH_GET_LIMIT]
            ]
            for attempt in itertools.count(1):
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    run = from_item(self._plain(item))
                    found[run.run_id] = run
                unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
                keys = unprocessed["Keys"] if unprocessed else []
                if not keys:
                    break
                if attempt >= _UNPROCESSED_ATTEMPTS:  # throttled throughout: say so, lose nothing
                    raise LedgerBusy(f"BatchGetItem left {len(keys)} run(s) unread")
                time.sleep(0.05 * 2**attempt)
        return [found[run_id] for run_id in run_ids if run_id in found]

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

    def recent(
        self,
        limit: int,
        *,
        spec: str | None = None,
        since: datetime | None = None,
        now: datetime | None = None,
    ) -> list[Run]:
        """Up to `limit` runs, newest first, for tools (`crq status`), through the Recent index."""
        return list(itertools.islice(self.iter_recent(spec=spec, since=since, now=now), limit))

    def iter_recent(
        self,
        *,
        spec: str | None = None,
        since: datetime | None = None,
        now: datetime | None = None,
    ) -> Iterator[Run]:
        """Runs newest first, created at or after `since`, of the spec named `spec` if given;
        read a page at a time through the Recent index, one year's partition after another."""
        start = now or datetime.now(UTC)
        floor = since or datetime(1970, 1, 1, tzinfo=UTC)
        lowest = in_flight_since(floor, "")
        for year in _years_back(start, floor):
            kwargs: dict[str, Any] = {
                "IndexName": RECENT_INDEX,
                "KeyConditionExpression": "recentYear = :year AND recentSince >= :lowest",
                "ExpressionAttributeValues": {
                    ":year": {"S": year},
                    ":lowest": {"S": lowest},
                },
                "ScanIndexForward": False,
            }
            if spec is not None:
                kwargs["FilterExpression"] = "specName = :spec"
                kwargs["ExpressionAttributeValues"][":spec"] = {"S": spec}
            for item in self._query(**kwargs):
                yield from_item(item)

    # --- spec name claims: one item per name, keyed `specName:<name>` (crq.spec.names) ---

    def claim_spec_name(self, name: str, spec_key: str, now: datetime) -> str | None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._name_claim(name, spec_key, now),
                ConditionExpression="attribute_not_exists(runId) OR specKey = :key",
                ExpressionAttributeValues={":key": {"S": spec_key}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return self._name_owner(name)
        return None

    def pass_spec_name(self, name: str, owner: str, spec_key: str, now: datetime) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._name_claim(name, spec_key, now),
                ConditionExpression="specKey = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    @staticmethod
    def _name_claim(name: str, spec_key: str, now: datetime) -> dict[str, Any]:
        return {
            "runId": {"S": NAME_CLAIM_PREFIX + name},
            "claimedName": {"S": name},
            "specKey": {"S": spec_key},
            "claimedAt": {"S": now.astimezone(UTC).isoformat()},
        }

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


class DynamoSpecStates:
    """Spec-state records (crq.schedule_state) in the runs table, keyed `spec:<hash>`.

    They carry none of the runs' index attributes, so the InFlight and ByQuery indexes never
    see them; `recent()` above skips them.
    """

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    @classmethod
    def sharing(cls, ledger: DynamoLedger) -> DynamoSpecStates:
        """Records in the ledger's table, through the ledger's client."""
        return cls(ledger._table, ledger._client)

    def get(self, state_id: str) -> SpecState | None:
        response = self._client.get_item(
            TableName=self._table, Key={"runId": {"S": state_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return self._state(DynamoLedger._plain(item)) if item else None

    def claim(self, state: SpecState) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=DynamoLedger._typed(self._item(state)),
                **self._claim_condition(state),
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            from crq.schedule_state import StateClaimRefused

            current = self.get(state.state_id)
            if current is None:  # deleted meanwhile (by hand): nothing to be ordered against
                raise
            raise StateClaimRefused(current) from exc

    def mark_applied(self, state: SpecState) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"runId": {"S": state.state_id}},
                UpdateExpression="SET applied = :yes",
                ConditionExpression="sequencer = :seq",
                ExpressionAttributeValues={":seq": {"S": state.sequencer}, ":yes": {"BOOL": True}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @staticmethod
    def _claim_condition(state: SpecState) -> dict[str, Any]:
        """Absent, older, the same event unfinished, or (sequencer ties, which S3 never makes
        but moto always does) another object version."""
        same = "applied = :no"
        values: dict[str, Any] = {":seq": {"S": state.sequencer}, ":no": {"BOOL": False}}
        if state.version_id is not None:
            same += " OR attribute_not_exists(versionId) OR versionId <> :version"
            values[":version"] = {"S": state.version_id}
        return {
            "ConditionExpression": "attribute_not_exists(runId) OR sequencer < :seq"
            f" OR (sequencer = :seq AND ({same}))",
            "ExpressionAttributeValues": values,
        }

    @staticmethod
    def _item(state: SpecState) -> dict[str, Any]:
        item: dict[str, Any] = {
            "runId": state.state_id,
            "recordType": "specState",
            "bucket": state.bucket,
            "specKey": state.spec_key,
            "specName": state.spec_name,
            "sequencer": state.sequencer,
            "applied": state.applied,
            "reason": state.reason,
            "updatedAt": state.updated_at.isoformat(),
        }
        if state.version_id is not None:
            item["versionId"] = state.version_id
        if state.desired is not None:
            item["desired"] = state.desired.model_dump_json(exclude_none=True)
        return item

    @staticmethod
    def _state(item: dict[str, Any]) -> SpecState:
        from crq.schedule_state import DesiredSchedule, SpecState

        desired = item.get("desired")
        return SpecState(
            state_id=item["runId"],
            bucket=item["bucket"],
            spec_key=item["specKey"],
            spec_name=item["specName"],
            sequencer=item["sequencer"],
            version_id=item.get("versionId"),
            desired=DesiredSchedule.model_validate_json(desired) if desired else None,
            applied=bool(item.get("applied")),
            reason=item.get("reason", ""),
            updated_at=item["updatedAt"],
        )
