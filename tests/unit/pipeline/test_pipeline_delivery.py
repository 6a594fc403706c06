"""Delivery with in-memory collaborators: claim, publish, SENT; exactly one message per run."""

from __future__ import annotations

from pipeline_fakes import start_spec, world

from crq.delivery import deliver
from crq.tracker import track_in_flight


def test_two_deliverers_racing_publish_once() -> None:
    w = world()
    run = start_spec(w, "daily")
    w.cleanrooms.end(run.query_id or "")
    w.publisher.failures = 1
    track_in_flight(w.deps)  # ended, claim left behind
    w.clock.advance(minutes=5)
    stale = w.ledger.only()
    deliver(stale, w.deps)
    deliver(stale, w.deps)  # the same read, a second time: its claim loses
    assert len(w.publisher.messages) == 1
