"""The cost guard's daily budget: CRPU hours billed per UTC day, per stack.

Every ended attempt's billed units are counted against the day it ended (once per query id,
in the ledger); a start is refused once today's count reaches the stack's DailyCrpuBudget.
Refused means START_FAILED with error.code DAILY_BUDGET_EXHAUSTED, for a new run and for a
queued one alike (a run waiting for a slot or a retry is not started past the budget either):
an unattended pipeline must not spend tomorrow what today's budget refused, and the
notification tells the owner now rather than a day later. 0 means no budget.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crq.ledger import AttemptCost, ErrorInfo, Ledger, budget_day
from crq.settings import Settings

DAILY_BUDGET_EXHAUSTED = "DAILY_BUDGET_EXHAUSTED"


def budget_refusal(settings: Settings, ledger: Ledger, now: datetime) -> ErrorInfo | None:
    """The error a start gets when today's budget is spent; None when it may start."""
    budget = settings.daily_crpu_budget
    if budget <= 0:
        return None
    day = budget_day(now)
    spent = ledger.billed_units(day)
    if spent < budget:
        return None
    return ErrorInfo(
        code=DAILY_BUDGET_EXHAUSTED,
        message=f"the stack's queries were billed {spent:g} CRPU hours on {day} (UTC), "
        f"reaching its DailyCrpuBudget of {budget:g}; starts resume the next day",
        retryable=False,
    )


def billed_units(statistics: dict[str, Any] | None) -> float | None:
    """`statistics.billedResourceUtilization.units`, as GetProtectedQuery reports it."""
    billed = (statistics or {}).get("billedResourceUtilization") or {}
    value = billed.get("units") if isinstance(billed, dict) else None
    return float(value) if isinstance(value, int | float) else None


def record_attempt(settings: Settings, ledger: Ledger, attempt: AttemptCost, now: datetime) -> None:
    """Count an ended attempt's units against today (idempotent per query id).

    Only while the stack has a budget: without one nobody reads the count, and a run costs no
    extra write. Units billed before a budget was set (a deploy) are not counted that day."""
    if settings.daily_crpu_budget > 0 and attempt.billed_units:
        ledger.add_billed_units(budget_day(now), attempt.query_id, attempt.billed_units)
