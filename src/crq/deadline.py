"""A time budget for one invocation, from the Lambda context.

The track function stops *starting* work once the budget is spent, so it returns (and its
writes land) before Lambda's timeout. Work not started stays in the ledger as it was, and the
next tick picks it up: nothing is lost, it is only later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol


class HasRemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock after which no new unit of work starts."""

    at: float

    @classmethod
    def never(cls) -> Deadline:
        return cls(float("inf"))

    @classmethod
    def of(cls, context: HasRemainingTime, reserve: timedelta) -> Deadline:
        """Lambda's remaining time less `reserve`, kept for the work already under way."""
        remaining = context.get_remaining_time_in_millis() / 1000
        return cls(time.monotonic() + remaining - reserve.total_seconds())

    def passed(self) -> bool:
        return time.monotonic() >= self.at
