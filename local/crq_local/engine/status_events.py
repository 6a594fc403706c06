"""Status-change events on EventBridge, shaped like Clean Rooms' own.

AWS does not document the detail of protected query events, so the engine emits a minimal
one: `{"membershipId", "protectedQueryId", "status"}`. Consumers must treat an event as a
wake-up and read the query with GetProtectedQuery. Delivery is best effort, as on AWS: a
failed put is logged, never raised.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aws import Clients

SOURCE = "aws.cleanrooms"
DETAIL_TYPES = {
    "SUBMITTED": "Protected Query Submitted",
    "STARTED": "Protected Query Started",
    "CANCELLING": "Protected Query Cancelling",
    "CANCELLED": "Protected Query Cancelled",
    "SUCCESS": "Protected Query Succeeded",
    "FAILED": "Protected Query Failed",
    "TIMED_OUT": "Protected Query Timed Out",
}

log = logging.getLogger("crq.engine.events")


def entry(membership_id: str, membership_arn: str, query_id: str, status: str) -> dict[str, Any]:
    """One PutEvents entry for a status change."""
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPES[status],
        "Detail": json.dumps(
            {"membershipId": membership_id, "protectedQueryId": query_id, "status": status}
        ),
        "Resources": [membership_arn],
        "EventBusName": "default",
    }


def put(events_client: Any, entries: list[dict[str, Any]]) -> None:
    try:
        response = events_client.put_events(Entries=entries)
    except Exception as exc:  # best effort: any client or connection error is only logged
        log.warning("status event not delivered", extra={"error": str(exc)})
        return
    if response.get("FailedEntryCount"):
        log.warning("status event rejected", extra={"failed": response.get("FailedEntryCount", 0)})


class Publisher:
    """Sends queued status events from one thread, in the order they were queued.

    `condition` is the engine's: `pending` changes under it and waiters are notified, so
    `wait_until_idle` can wait for the events too. Call `queue()` while holding it.
    """

    def __init__(self, clients: Clients, condition: threading.Condition) -> None:
        self._clients = clients
        self._condition = condition
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.pending = 0

    def queue(self, entries: list[dict[str, Any]]) -> None:
        self.pending += 1
        self._queue.put(entries)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="crq-engine-events", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Stop; events still queued are dropped (best effort, as on AWS)."""
        self._closing = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                if not self._closing:
                    put(self._clients.get("events"), batch)
            except Exception as exc:  # e.g. no region or credentials: events are best effort
                log.warning("status event not delivered", extra={"error": str(exc)})
            finally:
                with self._condition:
                    self.pending -= 1
                    self._condition.notify_all()
