"""What the contract tests need around each implementation (tests/contract/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline_fakes import Clock

from crq.ports import Publisher, QueryGateway, ResultLister, SpecStore


@dataclass
class CleanRooms:
    """A queries gateway and the controls a test needs around it."""

    gateway: QueryGateway
    finish: Callable[[str], None]  # the query runs to its end (held ones too)
    # Start a query that ends FAILED with this error: (request, code, message, retryable) -> id
    start_failing: Callable[[dict[str, Any], str, str, bool], str]
    page_size: Callable[[int], None]  # ListProtectedQueries' page size from now on


class Ticking(Clock):
    """Time that moves on between calls, as the real service's does."""

    def __call__(self) -> datetime:
        return self.advance(milliseconds=1)


Received = tuple[str, dict[str, Any], dict[str, str]]


@dataclass
class Topic:
    """The notifications topic: a publisher, and what a machine subscriber (SQS) received."""

    publisher: Publisher
    received: Callable[[int], list[Received]]  # waits for at least n messages
    unreachable: Publisher  # a publisher whose every publish fails


@dataclass
class Specs:
    """The specs bucket: a spec store, and how a user puts an object (returns its version)."""

    store: SpecStore
    bucket: str
    put: Callable[[str, bytes], str]


@dataclass
class Results:
    """A result bucket: the lister, and how Clean Rooms writes a file there (uri, size)."""

    lister: ResultLister
    bucket: str
    put: Callable[[str, int], None]
    missing_bucket: str = "crq-no-such-results"  # a bucket that does not exist
