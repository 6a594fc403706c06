"""How long each phase of a protected query lasts in the engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds spent in each phase. `running` is the least a query stays STARTED (the SQL's own
    run time counts towards it); `timeout` ends a query TIMED_OUT when its run (with any `slow`
    fault) would last longer."""

    submitted: float = 0.02
    running: float = 0.05
    cancelling: float = 0.02
    timeout: float = 60.0

    @classmethod
    def fast(cls) -> Timings:
        """For tests: a query ends in a few tens of milliseconds."""
        return cls()

    @classmethod
    def demo(cls) -> Timings:
        """A pace a person can watch: about five seconds a query."""
        return cls(submitted=1.0, running=4.0, cancelling=1.0, timeout=30 * 60.0)
