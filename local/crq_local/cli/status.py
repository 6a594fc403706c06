"""How `crq status` shows runs: the status word, the error column, the filters, the JSON rows.

The runs come from the ledger's Recent index (DynamoLedger.iter_recent), newest first; the
spec filter is applied by DynamoDB, the status filter here, page by page, until enough runs.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from crq.ledger import Run

_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
ERROR_WIDTH = 80


def parse_since(value: str, now: datetime) -> datetime:
    """`--since`: an age (`90m`, `12h`, `7d`, `2w`) or an ISO 8601 date or time (UTC default)."""
    text = value.strip().lower()
    match = _DURATION.fullmatch(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an age (90m, 12h, 7d, 2w) nor an ISO 8601 time "
            "(2026-03-02 or 2026-03-02T06:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def status_of(run: Run) -> str:
    """What the run is at: its notification event once ended, else the query's status or state."""
    if run.outcome is not None:
        return run.outcome.event.value
    return run.query_status or run.state.value


def matches_status(run: Run, wanted: str) -> bool:
    """`--status failed` matches QUERY_FAILED and START_FAILED; `queued`, `running`, `ended`
    the run's state; a full word (SPEC_REJECTED, STARTED) itself. Case-insensitive."""
    word = wanted.strip().upper()
    status = status_of(run)
    return word in (status, run.state.value) or word in status.split("_")


def error_of(run: Run) -> str:
    """One line on why a run failed: the error code and message, or the first spec problem."""
    outcome = run.outcome
    if outcome is None:
        return ""
    if outcome.errors:
        first = outcome.errors[0]
        where = f"{first.field}: " if first.field else ""
        more = f" (+{len(outcome.errors) - 1} more)" if len(outcome.errors) > 1 else ""
        return _short(f"{where}{first.message}") + more
    if outcome.error is not None:
        return _short(f"{outcome.error.code}: {outcome.error.message}")
    return ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 3] + "..."


def select(runs: Iterable[Run], limit: int, status: str | None) -> list[Run]:
    """The first `limit` runs (newest first) whose status matches."""
    wanted = (run for run in runs if status is None or matches_status(run, status))
    return list(itertools.islice(wanted, limit))


def as_json(run: Run) -> dict[str, Any]:
    """A run as `crq status --json` prints it (no request, never parameter values)."""
    outcome = run.outcome
    return {
        "runId": run.run_id,
        "spec": run.spec_name,
        "specKey": run.spec_key,
        "status": status_of(run),
        "state": run.state.value,
        "membershipId": run.membership_id,
        "queryId": run.query_id,
        "createdAt": _iso(run.created_at),
        "startedAt": _iso(run.query_create_time),
        "endedAt": _iso(outcome.ended_at) if outcome else None,
        "durationMs": outcome.duration_ms if outcome else None,
        "crpuUnits": outcome.crpu_units if outcome else None,
        "error": error_of(run) or None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
