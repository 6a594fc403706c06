"""Faults on demand: per query from an SQL comment hint, engine-wide from the collaboration file.

Hint grammar (one or more lines anywhere in the SQL; shell-like quoting for values):

    -- crq-fault: <word> [<word> ...]
    word := fail [code=CODE] [message="text"] [retryable=true|false]
          | timeout | hold | no-events | duplicate-events | lost-response
          | slow=<duration>          e.g. slow=500ms, slow=5s
          | first=<N>                the line applies to the first N queries carrying it

Example: `-- crq-fault: fail code=INTERNAL_ERROR retryable=true first=1` fails the first query
with this line and lets a retry of the same SQL succeed.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from .config import Faults as FileFaults
from .durations import parse_duration

HINT = re.compile(r"--\s*crq-fault:(?P<body>[^\n]*)", re.IGNORECASE)
_FLAGS = {"fail", "timeout", "hold", "no-events", "duplicate-events", "lost-response"}
_OPTIONS = {"code", "message", "retryable", "slow", "first"}
DEFAULT_FAIL_CODE = "INTERNAL_ERROR"
DEFAULT_FAIL_MESSAGE = "The query failed (fault injected by the local engine)."


class FaultHintError(ValueError):
    """A `crq-fault` line that cannot be understood; the start is refused with this message."""


@dataclass(frozen=True, slots=True)
class Failure:
    code: str = DEFAULT_FAIL_CODE
    message: str = DEFAULT_FAIL_MESSAGE
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class QueryFaults:
    """What a query's hints ask for (all off by default)."""

    fail: Failure | None = None
    timeout: bool = False
    hold: bool = False
    slow: float = 0.0
    events: str = "normal"  # "normal" | "none" | "duplicate"
    lost_response: bool = False

    def merge(self, other: QueryFaults) -> QueryFaults:
        return QueryFaults(
            fail=other.fail or self.fail,
            timeout=self.timeout or other.timeout,
            hold=self.hold or other.hold,
            slow=max(self.slow, other.slow),
            events=other.events if other.events != "normal" else self.events,
            lost_response=self.lost_response or other.lost_response,
        )


@dataclass(frozen=True, slots=True)
class HintLine:
    text: str  # the line as written: the key that `first=N` counts under
    faults: QueryFaults
    first: int | None


def parse_hints(sql: str) -> list[HintLine]:
    """Every `crq-fault` line of an SQL text. Raises FaultHintError for one it cannot read."""
    return [_parse_line(m.group("body").strip()) for m in HINT.finditer(sql)]


def _parse_line(body: str) -> HintLine:
    try:
        words = shlex.split(body)
    except ValueError as exc:
        raise FaultHintError(f"crq-fault hint {body!r}: {exc}") from exc
    if not words:
        raise FaultHintError("crq-fault hint is empty")
    faults, options = QueryFaults(), {}
    for word in words:
        key, eq, value = word.partition("=")
        if eq:
            if key not in _OPTIONS:
                raise FaultHintError(f"crq-fault hint: unknown option {key!r}")
            options[key] = value
        elif word in _FLAGS:
            faults = _apply_flag(faults, word)
        else:
            raise FaultHintError(f"crq-fault hint: unknown word {word!r}")
    return HintLine(body, *_apply_options(faults, options))


def _apply_flag(faults: QueryFaults, word: str) -> QueryFaults:
    match word:
        case "fail":
            return replace(faults, fail=Failure())
        case "timeout":
            return replace(faults, timeout=True)
        case "hold":
            return replace(faults, hold=True)
        case "no-events":
            return replace(faults, events="none")
        case "duplicate-events":
            return replace(faults, events="duplicate")
        case _:
            return replace(faults, lost_response=True)


def _apply_options(faults: QueryFaults, options: dict[str, str]) -> tuple[QueryFaults, int | None]:
    fail_options = {k: options[k] for k in ("code", "message", "retryable") if k in options}
    if fail_options and faults.fail is None:
        raise FaultHintError("crq-fault hint: code=, message= and retryable= go with fail")
    if faults.fail is not None:
        retryable = fail_options.get("retryable", "false").lower()
        if retryable not in ("true", "false"):
            raise FaultHintError("crq-fault hint: retryable= must be true or false")
        faults = replace(
            faults,
            fail=Failure(
                code=fail_options.get("code", DEFAULT_FAIL_CODE),
                message=fail_options.get("message", DEFAULT_FAIL_MESSAGE),
                retryable=retryable == "true",
            ),
        )
    if "slow" in options:
        try:
            faults = replace(faults, slow=parse_duration(options["slow"]))
        except ValueError as exc:
            raise FaultHintError(f"crq-fault hint: slow= {exc}") from exc
    first = None
    if "first" in options:
        if not options["first"].isdigit() or int(options["first"]) < 1:
            raise FaultHintError("crq-fault hint: first= must be a whole number from 1")
        first = int(options["first"])
    return faults, first


@dataclass
class FaultCounters:
    """How many queries each `first=N` hint line has already applied to (under a lock)."""

    seen: dict[str, int] = field(default_factory=dict)

    def resolve(self, lines: Sequence[HintLine]) -> QueryFaults:
        faults = QueryFaults()
        for line in lines:
            count = self.seen.get(line.text, 0)
            self.seen[line.text] = count + 1
            if line.first is None or count < line.first:
                faults = faults.merge(line.faults)
        return faults


class Throttle:
    """Engine-wide ThrottlingException: the collaboration file's `faults.throttle`, the rate
    limit of `limits`, and `crq_local.engine.testing.throttle(...)` at run time. Thread-safe."""

    def __init__(
        self,
        faults: FileFaults,
        rate: float | None,
        burst: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        throttle = faults.throttle
        self._remaining = throttle.firstRequests if throttle else 0
        self._until = self._started + (throttle.forSeconds if throttle else 0.0)
        self._operations = set(throttle.operations) if throttle and throttle.operations else None
        self._rate = rate
        self._capacity = float(burst or max(1, int(rate or 1)))
        self._tokens = self._capacity
        self._refilled = self._started

    def add(
        self, requests: int = 0, seconds: float = 0.0, operations: Sequence[str] | None = None
    ) -> None:
        """Throttle the next `requests` requests and/or every request for `seconds`."""
        with self._lock:
            self._remaining += requests
            self._until = max(self._until, self._clock() + seconds)
            self._operations = set(operations) if operations else None

    def check(self, operation: str) -> str | None:
        """A reason to throttle this request, or None to let it through."""
        with self._lock:
            now = self._clock()
            if self._operations is None or operation in self._operations:
                if self._remaining > 0:
                    self._remaining -= 1
                    return "Rate exceeded (injected: throttled request)"
                if now < self._until:
                    return "Rate exceeded (injected: throttling window)"
            if self._rate is not None:
                self._tokens = min(
                    self._capacity, self._tokens + (now - self._refilled) * self._rate
                )
                self._refilled = now
                if self._tokens < 1:
                    return "Rate exceeded"
                self._tokens -= 1
            return None
