"""moto's DynamoDB as the local stack needs it: each request atomic, and item reads that cost
what they would cost the service, not the emulator.

- `atomic_requests()`: DynamoDB applies each request atomically (a conditional write is checked
  and written in one step); moto, in-process, does not across threads. One lock around each
  request gives that back, so concurrent invocations race crq's code, not moto's internals.
  A transaction too: moto checks and writes its items one by one, and rolls a cancelled one
  back by restoring a deep copy of every table it touched, which costs ~0.1 s once the runs
  table holds a few hundred items (DynamoDB's cost does not grow with the table). Under the
  lock nothing else writes meanwhile, so restoring the items the transaction names, as they
  were, is the same rollback.
- `fast_item_responses()`: moto 5.2 writes every response by walking botocore's output shape
  value by value: a Query of 200 runs costs ~0.5 CPU-s, and in one process the emulator starves
  the functions it serves (the bench's burst spent most of its CPU there). The item operations'
  results are DynamoDB JSON already once moto has turned its types into dicts, so they are
  written with `json.dumps`: the same document, with the same status and headers
  (tests/integration/sandbox/test_sandbox_moto_dynamodb.py compares both), ~7x cheaper.

Both patch moto's classes for the process while they are entered (enter them before threads
start, leave them after), and restore them on exit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator
from typing import Any

# Operations whose results are items and counts: plain DynamoDB JSON, no timestamps or blobs
# for the serializer to convert (moto keeps binary values base64-encoded, as the wire has them).
ITEM_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
_REQUESTS = ("put_item", "update_item", "delete_item", "get_item", "query", "scan")


@contextlib.contextmanager
def atomic_requests() -> Iterator[None]:
    """Each moto DynamoDB request atomic, a cancelled transaction rolled back item by item."""
    from moto.dynamodb import models
    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    originals = {name: getattr(DynamoDBBackend, name) for name in _REQUESTS}
    transact = DynamoDBBackend.transact_write_items
    real_copy = models.copy

    for name, original in originals.items():

        @functools.wraps(original)
        def atomic(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, atomic)

    class _KeepTables:  # moto's whole-table snapshot: the table itself (restored item-wise)
        @staticmethod
        def deepcopy(value: Any) -> Any:
            return value if isinstance(value, models.Table) else real_copy.deepcopy(value)

    def transact_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            saved = []
            for entry in transact_items:
                op = next(iter(entry.values()))
                table = self.get_table(op["TableName"])
                key = op.get("Key") or {
                    k: op["Item"][k]
                    for k in (table.hash_key_attr, table.range_key_attr)
                    if k is not None
                }
                before = originals["get_item"](self, op["TableName"], key)
                saved.append((op["TableName"], key, before and before.to_json()["Attributes"]))
            models.copy = _KeepTables  # type: ignore[assignment]
            try:
                return transact(self, transact_items)  # type: ignore[no-any-return]
            except TransactionCanceledException:
                for table_name, key, attributes in saved:
                    if attributes is None:
                        originals["delete_item"](self, table_name, key)
                    else:
                        originals["put_item"](self, table_name, attributes)
                raise
            finally:
                models.copy = real_copy

    DynamoDBBackend.transact_write_items = transact_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(DynamoDBBackend, name, original)
        DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign]


@contextlib.contextmanager
def fast_item_responses() -> Iterator[None]:
    """moto's DynamoDB item operations answered with `json.dumps` of their result."""
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoResult

    original = DynamoResult.execute_result

    def execute_result(self: ActionResult, context: Any) -> Any:
        result = self.result
        if isinstance(result, dict) and context.operation_model.name in ITEM_OPERATIONS:
            try:
                body = json.dumps(result, separators=(",", ":"))
            except TypeError:  # a value only the serializer knows how to write
                return original(self, context)
            # Status and headers as the serializer makes them, from an empty result (cheap).
            status, headers, _ = ActionResult({}).execute_result(context)
            return status, headers, body
        return original(self, context)

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoResult.execute_result = original  # type: ignore[method-assign]


@contextlib.contextmanager
def local_dynamodb() -> Iterator[None]:
    """Both: what every in-process stack of crq's wants from moto's DynamoDB."""
    with atomic_requests(), fast_item_responses():
        yield
