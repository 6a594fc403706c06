"""DynamoLedger.get_many against a client that leaves keys unprocessed, as a throttled table
does (moto never does): the keys are asked again, and a read that never completes fails loudly
instead of returning fewer runs."""

from __future__ import annotations

from typing import Any

import pytest
from pipeline_fakes import queued_run

from crq.adapters import dynamodb
from crq.adapters.dynamodb import DynamoLedger, to_item
from crq.errors import LedgerBusy

TABLE = "runs"


class ThrottledClient:
    """BatchGetItem that leaves keys unprocessed for the first `throttled` calls: one key on
    the first call, then every key it is sent."""

    def __init__(self, items: dict[str, dict[str, Any]], throttled: int) -> None:
        self.items = items
        self.throttled = throttled
        self.asked: list[list[str]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        keys = RequestItems[TABLE]["Keys"]
        assert RequestItems[TABLE]["ConsistentRead"] is True
        ids = [k["runId"]["S"] for k in keys]
        self.asked.append(ids)
        if self.throttled > 0:
            self.throttled -= 1
            served, left = ([], keys) if len(self.asked) > 1 else (ids[1:], keys[:1])
        else:
            served, left = ids, []
        found = [self.items[i] for i in served if i in self.items]
        return {
            "Responses": {TABLE: found},
            "UnprocessedKeys": {TABLE: {"Keys": left}} if left else {},
        }


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dynamodb.time, "sleep", lambda _: None)


def _items(n: int) -> dict[str, dict[str, Any]]:
    return {f"r{i}": DynamoLedger._typed(to_item(queued_run(run_id=f"r{i}"))) for i in range(n)}


def test_unprocessed_keys_are_asked_again_and_every_run_comes_back_in_order() -> None:
    client = ThrottledClient(_items(3), throttled=2)
    ledger = DynamoLedger(TABLE, client)  # type: ignore[arg-type]

    runs = ledger.get_many(["r2", "r0", "r1"])

    assert [r.run_id for r in runs] == ["r2", "r0", "r1"]
    assert client.asked == [["r2", "r0", "r1"], ["r2"], ["r2"]]


def test_keys_left_unprocessed_every_time_fail_the_read_rather_than_drop_runs() -> None:
    client = ThrottledClient(_items(2), throttled=100)
    ledger = DynamoLedger(TABLE, client)  # type: ignore[arg-type]

    with pytest.raises(LedgerBusy):
        ledger.get_many(["r0", "r1"])
    assert len(client.asked) == dynamodb._UNPROCESSED_ATTEMPTS


def test_more_than_a_hundred_keys_are_asked_a_hundred_at_a_time() -> None:
    client = ThrottledClient(_items(250), throttled=0)
    ledger = DynamoLedger(TABLE, client)  # type: ignore[arg-type]

    runs = ledger.get_many([f"r{i}" for i in range(250)])

    assert len(runs) == 250
    assert [len(a) for a in client.asked] == [100, 100, 50]
