"""The `-- crq-fault:` hint grammar, `first=N` counting, and the throttle."""

from __future__ import annotations

import pytest

from crq_local.engine.config import Faults, ThrottleFaults
from crq_local.engine.faults import (
    Failure,
    FaultCounters,
    FaultHintError,
    QueryFaults,
    Throttle,
    parse_hints,
)


def test_a_query_without_hints_has_no_faults() -> None:
    assert FaultCounters().resolve(parse_hints("SELECT 1 -- an ordinary comment")) == QueryFaults()


def test_hints_on_several_lines_combine() -> None:
    sql = """SELECT 1
    -- crq-fault: fail code=QUOTA message="Workers were lost" retryable=true
    -- crq-fault: slow=1.5s no-events"""
    faults = FaultCounters().resolve(parse_hints(sql))
    assert faults == QueryFaults(
        fail=Failure("QUOTA", "Workers were lost", True), slow=1.5, events="none"
    )


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("timeout", QueryFaults(timeout=True)),
        ("hold", QueryFaults(hold=True)),
        ("duplicate-events", QueryFaults(events="duplicate")),
        ("lost-response", QueryFaults(lost_response=True)),
        ("slow=250ms", QueryFaults(slow=0.25)),
        ("fail", QueryFaults(fail=Failure())),
    ],
)
def test_each_word(hint: str, expected: QueryFaults) -> None:
    assert FaultCounters().resolve(parse_hints(f"-- crq-fault: {hint}")) == expected


def test_first_n_applies_to_the_first_n_queries_with_that_line() -> None:
    counters = FaultCounters()
    hints = parse_hints("SELECT 1 -- crq-fault: fail first=2")
    seen = [counters.resolve(hints).fail is not None for _ in range(4)]
    assert seen == [True, True, False, False]
    # another line counts on its own
    assert counters.resolve(parse_hints("-- crq-fault: timeout first=1")).timeout


@pytest.mark.parametrize(
    "hint",
    ["", "explode", "retryable=true", "fail retryable=yes", "slow=fast", "first=-1", "fail x=1"],
)
def test_malformed_hints(hint: str) -> None:
    with pytest.raises(FaultHintError):
        parse_hints(f"-- crq-fault: {hint}")


def test_throttle_first_requests_of_chosen_operations() -> None:
    throttle = Throttle(
        Faults(throttle=ThrottleFaults(firstRequests=2, operations=["StartProtectedQuery"])),
        None,
        None,
    )
    assert throttle.check("GetProtectedQuery") is None
    assert throttle.check("StartProtectedQuery") is not None
    assert throttle.check("StartProtectedQuery") is not None
    assert throttle.check("StartProtectedQuery") is None


def test_throttle_window_and_rate_follow_the_clock() -> None:
    now = [100.0]
    throttle = Throttle(
        Faults(throttle=ThrottleFaults(forSeconds=5)), rate=1.0, burst=1, clock=lambda: now[0]
    )
    assert throttle.check("GetMembership") is not None  # inside the 5 s window
    now[0] += 6
    assert throttle.check("GetMembership") is None  # the burst token
    assert throttle.check("GetMembership") == "Rate exceeded"
    now[0] += 1
    assert throttle.check("GetMembership") is None  # refilled at 1 request/s
    throttle.add(requests=1)
    assert throttle.check("ListMemberships") is not None
