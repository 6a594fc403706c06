"""`crq schedules`, `crq trigger`, `crq backfill`: the spec-declared schedules from the terminal.

    crq schedules [--stack NAME]                          every scheduled spec, its next runs
    crq trigger SPEC --at TIME [--stack NAME]             run SPEC as if scheduled at TIME
    crq backfill SPEC --from DATE --to DATE [--stack]     every occurrence in a window, oldest first

A run triggered for a time is the run the schedule would have made (runId from the spec key and
the time, docs/design.md): the same TIME twice, or a backfill run twice, starts nothing twice.
Against the sandbox (its export lines) the start use case runs in this process with the sandbox's
endpoints; against a deployed stack (`--stack NAME`, its outputs) the start function is invoked,
so the run starts with the stack's role and settings.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from crq_local.cli import aws, console
from crq_local.cli.guard import EXIT_FAILED, fail, friendly_errors

MAX_BACKFILL = 500  # occurrences per backfill: a typo in --from must not start a year of runs
NEXT_FIRES = 3
LAST_RUN_LOOKBACK = 5_000  # runs read back for `crq schedules`' last-run column
_TICK = timedelta(microseconds=1)

StackOption = Annotated[
    str | None,
    typer.Option(help="A deployed stack's name (default: the sandbox's exported variables)."),
]
SpecArgument = Annotated[
    str, typer.Argument(help="The spec's key in the specs bucket, e.g. specs/weekly.yaml.")
]


@dataclass(frozen=True)
class Target:
    """Where the specs, the ledger and the start function are."""

    table: str
    bucket: str
    prefix: str
    start_function: str | None  # a deployed stack's; None: run the start use case here
    schedule_group: str = ""  # the stack's Scheduler group of spec schedules


# ---- the commands ------------------------------------------------------------------------------


@friendly_errors
def schedules(stack: StackOption = None) -> None:
    """Every scheduled spec: expression, zone, next three runs, last scheduled run."""
    from crq.adapters.dynamodb import DynamoLedger
    from crq.adapters.scheduler import SchedulerGateway
    from crq.ledger import TriggerType
    from crq.schedule_state import DesiredSchedule
    from crq.schedule_sync import next_fire_times

    target = _target(stack)
    if not target.schedule_group:
        fail(
            "no schedule group: CRQ_SCHEDULE_GROUP is not set (paste the export lines "
            "`crq sandbox` prints) or the stack has no ScheduleGroupName output"
        )
    # The schedule group is the truth of what fires (the spec-state records only order events).
    found = SchedulerGateway(aws.client("scheduler")).list(target.schedule_group)
    scheduled = {_input_key(s.input): s for s in found if _input_key(s.input)}
    if not scheduled:
        console.out.print("no scheduled specs: add `schedule:` to a spec and upload it")
        return
    last: dict[str, Any] = {}
    # Newest first through the Recent index; stop once every scheduled spec's last run is known.
    for seen, run in enumerate(DynamoLedger(target.table, aws.client("dynamodb")).iter_recent()):
        if len(last) == len(scheduled) or seen >= LAST_RUN_LOOKBACK:
            break
        if run.trigger_type is TriggerType.SCHEDULE and run.spec_key in scheduled:
            last.setdefault(run.spec_key, run)
    now = datetime.now(UTC)
    table = Table(title=f"crq: {len(scheduled)} scheduled spec{'s' if len(scheduled) != 1 else ''}")
    for column in ("spec", "schedule", "zone", "next runs", "last run"):
        table.add_column(column, overflow="fold")
    for key, schedule in sorted(scheduled.items()):
        desired = DesiredSchedule(
            expression=schedule.expression,
            timezone=schedule.timezone,
            start=schedule.start,
            end=schedule.end,
            flexible_window_minutes=schedule.flexible_window_minutes,
        )
        fires = next_fire_times(desired, now, NEXT_FIRES)
        latest = last.get(key)
        table.add_row(
            key,
            desired.expression,
            desired.timezone,
            "\n".join(f"{t:%Y-%m-%d %H:%M %Z}" for t in fires) or "none",
            _last_run(latest, desired.timezone) if latest else "never",
        )
    console.out.print(table)


def _input_key(target_input: str) -> str:
    """The spec key a schedule's target input names ("" if it is not crq's)."""
    try:
        value = json.loads(target_input or "{}")
    except ValueError:
        return ""
    key = value.get("specKey") if isinstance(value, dict) else None
    return key if isinstance(key, str) else ""


@friendly_errors
def trigger(
    spec: SpecArgument,
    at: Annotated[
        str,
        typer.Option(
            "--at",
            help="The scheduled time: ISO 8601, e.g. 2026-03-30T06:00 (no offset: the spec's "
            "timezone).",
        ),
    ],
    stack: StackOption = None,
) -> None:
    """Run a spec now as if its schedule had fired at TIME (once per TIME, however often)."""
    target = _target(stack)
    key = _spec_key(spec, target.prefix)
    zone = _spec_zone(target, key)
    when = _instant(at, zone, "--at")
    result = _Starter(target).fire(key, when)
    console.out.print(
        _describe(key, when, zone, result), markup=False, highlight=False, soft_wrap=True
    )
    if result.get("outcome") in ("rejected", "start_failed"):
        raise typer.Exit(EXIT_FAILED)


@friendly_errors
def backfill(
    spec: SpecArgument,
    since: Annotated[
        str, typer.Option("--from", help="First day (YYYY-MM-DD or a date-time), inclusive.")
    ],
    until: Annotated[
        str, typer.Option("--to", help="Last day (YYYY-MM-DD, inclusive) or a date-time.")
    ],
    stack: StackOption = None,
) -> None:
    """Run every occurrence of a spec's schedule in a window, oldest first (each time once)."""
    from crq.schedule import build_schedule

    target = _target(stack)
    key = _spec_key(spec, target.prefix)
    loaded = _load(target, key)
    if loaded.schedule is None:
        fail(f"s3://{target.bucket}/{key} has no schedule: nothing to backfill")
    zone = _zone(loaded.timezone)
    low = _instant(since, zone, "--from")
    high = _instant(until, zone, "--to", end_of_day=True)
    if high <= low:
        fail(f"--to ({until}) must be after --from ({since})")
    now = datetime.now(UTC)
    future = high > now
    high = min(high, now)
    schedule = build_schedule(
        loaded.schedule.expression,
        loaded.timezone,
        start=loaded.schedule.start,
        end=loaded.schedule.end,
    )
    fires = [
        t for t in schedule.next_fires(low - _TICK, MAX_BACKFILL + 1, created=low) if t <= high
    ]
    if len(fires) > MAX_BACKFILL:
        fail(f"more than {MAX_BACKFILL} occurrences between {since} and {until}: narrow it")
    where = f"{loaded.schedule.expression} {loaded.timezone}"
    if not fires:
        console.out.print(f"no occurrence of {where} between {since} and {until}", markup=False)
        return
    if future:
        console.out.print("occurrences after now are left to the schedule", style="dim")
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    starter = _Starter(target)
    with Progress(*columns, console=console.out) as progress:
        task = progress.add_task(f"backfill {key}", total=len(fires))
        for when in fires:  # oldest first
            result = starter.fire(key, when)
            outcome = str(result.get("outcome", "?"))
            outcomes[outcome] += 1
            if outcome in ("rejected", "start_failed"):
                problems.append(_describe(key, when, zone, result))
            progress.advance(task)
    console.out.print(f"{key}: {len(fires)} occurrence(s) of {where}", markup=False, soft_wrap=True)
    summary = Table(title="backfill summary", title_justify="left")
    summary.add_column("outcome")
    summary.add_column("runs", justify="right")
    for outcome, count in sorted(outcomes.items()):
        summary.add_row(_OUTCOME_WORDS.get(outcome, outcome), str(count))
    console.out.print(summary)
    for line in problems:
        console.out.print(line, markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(EXIT_FAILED)


# ---- helpers -----------------------------------------------------------------------------------


def schedule_note(spec: Any) -> str:
    """`; schedule cron(0 6 ? * MON *) Europe/Berlin, next 2026-03-30 06:00 CEST` for
    `crq validate` (empty for an unscheduled spec)."""
    if spec.schedule is None:
        return ""
    from crq.schedule_state import DesiredSchedule
    from crq.schedule_sync import next_fire_times

    desired = DesiredSchedule(
        expression=spec.schedule.expression,
        timezone=spec.timezone,
        start=spec.schedule.start,
        end=spec.schedule.end,
    )
    fires = next_fire_times(desired, datetime.now(UTC), 1)
    upcoming = f"next {fires[0]:%Y-%m-%d %H:%M %Z}" if fires else "no run ahead"
    return f"; schedule {desired.expression} {desired.timezone}, {upcoming}"


_OUTCOME_WORDS = {
    "started": "started",
    "queued": "queued (the membership's query slots are full; they start in turn)",
    "in_progress": "already triggered, still running",
    "ended": "already triggered, ended",
    "rejected": "rejected (SPEC_REJECTED)",
    "start_failed": "start failed (START_FAILED)",
}


def _target(stack: str | None) -> Target:
    if stack:
        outputs = aws.stack_outputs(stack)
        missing = [
            name
            for name in ("TableName", "SpecsBucketName", "StartFunctionName")
            if name not in outputs
        ]
        if missing:
            fail(f"stack {stack} has no {', '.join(missing)} output: is it a crq stack?")
        return Target(
            outputs["TableName"],
            outputs["SpecsBucketName"],
            "specs/",
            outputs["StartFunctionName"],
            outputs.get("ScheduleGroupName", ""),
        )
    names = {"CRQ_TABLE_NAME": "", "CRQ_SPECS_BUCKET": "", "CRQ_TOPIC_ARN": ""}
    for name in names:
        names[name] = os.environ.get(name, "")
        if not names[name]:
            fail(
                f"{name} is not set: paste the export lines `crq sandbox` prints, "
                "or name a deployed stack with --stack"
            )
    return Target(
        names["CRQ_TABLE_NAME"],
        names["CRQ_SPECS_BUCKET"],
        "specs/",
        None,
        os.environ.get("CRQ_SCHEDULE_GROUP", ""),
    )


def _spec_key(spec: str, prefix: str) -> str:
    key = spec.removeprefix("s3://")
    if spec.startswith("s3://"):
        key = key.partition("/")[2]
    if not key.startswith(prefix):
        key = prefix + key.lstrip("/")
    return key


def _load(target: Target, key: str) -> Any:
    from crq.adapters.s3 import SpecStore
    from crq.errors import SpecUnreadable
    from crq.spec import SpecInvalid, load_spec

    uri = f"s3://{target.bucket}/{key}"
    try:
        obj = SpecStore(aws.client("s3")).get_spec(target.bucket, key, None)
        # The stack's interval limit applies when it runs; here only the spec's own keys count.
        return load_spec(obj.data, uri, min_schedule_interval_minutes=0)
    except SpecUnreadable as exc:
        fail(f"{uri}: {exc.reason}")
    except SpecInvalid as exc:
        fail("; ".join(exc.lines()), EXIT_FAILED)


def _spec_zone(target: Target, key: str) -> tzinfo:
    return _zone(_load(target, key).timezone)


def _zone(name: str) -> tzinfo:
    from crq.schedule import zone_of

    return zone_of(name)


def _instant(text: str, zone: tzinfo, option: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time; without an offset, on the spec's zone's clock."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end_of_day:
                day += timedelta(days=1)
            local = datetime.combine(day, time())
            value = local.replace(tzinfo=zone)
            return value.astimezone(UTC) - (_TICK if end_of_day else timedelta(0))
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not an ISO 8601 date or date-time (2026-03-30T06:00)")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


class _Starter:
    """Fires a spec for a scheduled time: the deployed start function, or the start use case
    here against the sandbox (its collaborators built once per command)."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._deps: Any = None

    def fire(self, key: str, when: datetime) -> dict[str, Any]:
        if self._target.start_function is None and self._deps is None:
            self._deps = _local_collaborators(self._target)
        return _fire(self._target, key, when, self._deps)


def _fire(target: Target, key: str, when: datetime, deps: Any) -> dict[str, Any]:
    scheduled = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "specKey": key,
        "scheduledTime": scheduled,
        "scheduleArn": "crq-cli",
        "executionId": f"crq-cli-{uuid.uuid4()}",
    }
    if target.start_function:
        response = aws.client("lambda").invoke(
            FunctionName=target.start_function,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            fail(f"{target.start_function} failed: {payload.get('errorMessage', payload)}")
        return dict(payload)
    from crq.starter import start_run
    from crq.triggers import parse_start_event

    return start_run(parse_start_event(event), deps).as_dict()  # type: ignore[arg-type]


def _local_collaborators(target: Target) -> Any:
    """The start use case's collaborators against the sandbox's endpoints (its exports)."""
    from aws_lambda_powertools import Metrics

    from crq.adapters import build_collaborators
    from crq.errors import ConfigError
    from crq.settings import Settings

    # The sandbox exports the start function's settings (CRQ_MEMBERSHIP_IDS, ...); Powertools'
    # names are the template's.
    defaults = {"POWERTOOLS_SERVICE_NAME": "crq", "POWERTOOLS_METRICS_NAMESPACE": "crq"}
    try:
        settings = Settings.from_env({**defaults, **os.environ})
    except ConfigError as exc:
        fail(f"the environment: {exc}")
    return build_collaborators(settings, Metrics(namespace="crq", service="crq-cli"))


def _describe(key: str, when: datetime, zone: tzinfo, result: dict[str, Any]) -> str:
    local = when.astimezone(zone).isoformat()
    outcome = str(result.get("outcome", "?"))
    text = f"{key} at {local}: {_OUTCOME_WORDS.get(outcome, outcome)}"
    if result.get("query_id"):
        text += f", query {result['query_id']}"
    if result.get("detail"):
        text += f" ({result['detail']})"
    return text


def _last_run(run: Any, zone_name: str) -> str:
    from crq.schedule import zone_of

    local = run.trigger_time.astimezone(zone_of(zone_name))
    status = run.outcome.event.value if run.outcome else run.state.value
    return f"{local:%Y-%m-%d %H:%M %Z} {status}"
