"""`crq status`: recent runs from the ledger's Recent index, and how they are shown (the status
word, the error column, the filters, the JSON rows).

The runs come from the ledger's Recent index (DynamoLedger.iter_recent), newest first; the
spec filter is applied by DynamoDB, the status filter here, page by page, until enough runs.
`ledger(stack)` is the ledger `crq watch` reads too.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from crq_local.cli import aws, console
from crq_local.cli.guard import fail, friendly_errors, stack_name

if TYPE_CHECKING:
    from crq.ledger import Run

_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
ERROR_WIDTH = 80


@friendly_errors
def status(
    limit: Annotated[int, typer.Option(help="How many runs, newest first.", min=1, max=1000)] = 20,
    spec: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only the runs of this spec name.")
    ] = None,
    status_: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="WORD",
            help="Only runs whose status or state holds this word: failed, succeeded, "
            "rejected, queued, running, ended, or a full status such as QUERY_FAILED.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="AGE|TIME",
            help="Only runs created since: an age (90m, 12h, 7d, 2w) or an ISO 8601 time.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array of runs, for scripts.")
    ] = False,
    stack: Annotated[
        str | None,
        typer.Option(
            help="A deployed stack's name (default: CRQ_TABLE_NAME).", callback=stack_name
        ),
    ] = None,
) -> None:
    """Recent runs from the ledger's Recent index: spec, status, query id, started, duration,
    CRPU units, and why a run failed."""
    now = datetime.now(UTC)
    try:
        floor = parse_since(since, now) if since is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    runs = select(ledger(stack).iter_recent(spec=spec, since=floor, now=now), limit, status_)
    if as_json:
        print(json.dumps([run_json(run) for run in runs], indent=2))
        return
    out = console.out
    if not runs:
        filtered = spec is not None or status_ is not None or since is not None
        out.print(
            "no runs match these filters"
            if filtered
            else "no runs yet: upload a spec under specs/ in the specs bucket"
        )
        return
    table = Table(title=f"crq: {len(runs)} most recent run{'s' if len(runs) != 1 else ''}")
    table.add_column("spec", overflow="fold")
    # Never shortened: a status is what --status takes, a query id what `crq watch` takes.
    table.add_column("status", no_wrap=True)
    table.add_column("query id", no_wrap=True, min_width=36)
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("CRPU units", justify="right", no_wrap=True)
    table.add_column("error", overflow="fold", ratio=1)
    for run in runs:
        units = run.outcome.crpu_units if run.outcome else None
        table.add_row(
            run.spec_name,
            status_of(run),
            run.query_id or "",
            _when(run.query_create_time or run.created_at),
            _duration(run),
            f"{units:g}" if units is not None else "",
            Text(error_of(run), style="red"),
        )
    # Piped (a script, a CI log), nothing wraps lines: one run per line, however wide.
    shown = out if out.is_terminal else Console(highlight=False, width=console.STATUS_PIPED_WIDTH)
    shown.print(table)


def _table_name(stack: str | None) -> str:
    if stack:
        outputs = aws.stack_outputs(stack)
        if "TableName" not in outputs:
            fail(f"stack {stack} has no TableName output: is it a crq stack?")
        return outputs["TableName"]
    name = os.environ.get("CRQ_TABLE_NAME")
    if not name:
        fail(
            "CRQ_TABLE_NAME is not set: paste the export lines `crq sandbox` prints, "
            "or name a deployed stack with --stack"
        )
    return name


def ledger(stack: str | None) -> Any:
    """The runs table: a deployed stack's TableName output, or CRQ_TABLE_NAME."""
    from crq.adapters.dynamodb import DynamoLedger

    return DynamoLedger(_table_name(stack), aws.client("dynamodb"))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _duration(run: Run) -> str:
    ms = run.outcome.duration_ms if run.outcome else None
    return f"{ms / 1000:.1f} s" if ms is not None else ""


# ---- how runs are shown ----------------------------------------------------------------------


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


def run_json(run: Run) -> dict[str, Any]:
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
