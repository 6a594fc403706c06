"""`crq`: the command line of crq (typer + rich).

    crq validate FILE...            check spec files as the start function will
    crq validate --online FILE...   ... and against Clean Rooms and the stack (preflight)
    crq render FILE [--at TIME]     the StartProtectedQuery request a spec produces
    crq engine --config FILE        the local Clean Rooms engine over HTTP
    crq sandbox [--config FILE]     the whole stack offline (moto + engine + handlers)
    crq demo                        the sandbox, the example specs, their notifications
    crq status [--limit N] [--spec NAME] [--status WORD] [--since AGE] [--json]
                                    recent runs from the ledger's Recent index
    crq watch QUERY_ID              a query's progress until it ends
    crq schedules | trigger | backfill   spec schedules (cli_schedules.py)

Commands that talk to AWS use boto3's usual configuration (the `export` lines the sandbox
prints, or a profile); `--stack NAME` reads a deployed stack's outputs instead. Every failure
is one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)
from rich.console import Console
from rich.table import Table
from rich.text import Text

from crq_local import cli_guard
from crq_local.cli_guard import PORT_MAX, PORT_MIN, finite_seconds, stack_name

if TYPE_CHECKING:
    from crq.ledger import Run
    from crq_local.engine.timings import Timings

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILED = 1  # the command ran and the answer is "no" (invalid spec, query failed)
EXIT_USAGE = 2  # the command could not run (missing file, bad config, nothing listening)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENDED_STATUSES = frozenset({"SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT"})

app = typer.Typer(
    name="crq",
    help="Run AWS Clean Rooms protected queries unattended, and be told how each one ended.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
# Piped into a file or a CI log, rich would assume 80 columns and crush the tables.
_PIPED_WIDTH = None if sys.stdout.isatty() else 120
STATUS_PIPED_WIDTH = 200  # crq status has seven columns, one of them an error message
out = Console(highlight=False, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False, width=_PIPED_WIDTH)


class Pace(StrEnum):
    """How fast the local engine runs queries."""

    fast = "fast"  # tens of milliseconds: tests
    demo = "demo"  # a few seconds: a pace a person can watch


class CliError(Exception):
    """A failure to report as one line and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int = EXIT_USAGE) -> NoReturn:
    raise CliError(message, exit_code)


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the failures a user can cause into one clear line on stderr."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            _die(str(exc), exc.exit_code)
        except EndpointConnectionError as exc:
            _die(
                f"cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}: is the sandbox "
                "running? Start it with `crq sandbox` and paste the export lines it prints."
            )
        except (NoCredentialsError, PartialCredentialsError):
            _die(
                "no AWS credentials: paste the export lines `crq sandbox` prints, or configure "
                "a profile (`aws configure`) for a deployed stack."
            )
        except NoRegionError:
            _die("no AWS region: set AWS_DEFAULT_REGION (the sandbox prints it) or use a profile.")
        except ProfileNotFound as exc:
            _die(str(exc))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            _die(f"{exc.operation_name} failed: {error.get('Code')}: {error.get('Message')}")
        except ParamValidationError as exc:
            _die(f"invalid request: {exc.kwargs.get('report', exc)}")
        except OSError as exc:
            if exc.filename is None:
                raise
            _die(f"{exc.filename}: {exc.strerror or exc}")
        except KeyboardInterrupt:
            _die("interrupted", 130)

    return wrapper


def _die(message: str, exit_code: int = EXIT_USAGE) -> NoReturn:
    # Text, not markup: messages quote user input, and `[...]` in it is not a style.
    cli_guard.print_error(err, message)
    raise typer.Exit(exit_code)


def _aws_config() -> Config:
    # Fail fast when nothing listens: a stopped sandbox should not mean a minute of retries.
    return Config(
        connect_timeout=3, read_timeout=30, retries={"mode": "standard", "max_attempts": 2}
    )


def _client(service: str) -> Any:
    import boto3

    # A session of its own: boto3's default session would keep the credentials it found first.
    session = boto3.session.Session()
    return session.client(service, config=_aws_config())  # type: ignore[call-overload]


def _timings(pace: Pace) -> Timings:
    from crq_local.engine.timings import Timings

    return Timings.fast() if pace is Pace.fast else Timings.demo()


# ---- validate, render ------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        if not path.is_dir() and path.exists() and not path.is_file():
            fail(f"{path}: not a regular file (a device, pipe or socket is not a spec file)")
        return path.read_bytes()  # a regular file: the size error gives its real size
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except IsADirectoryError:
        fail(f"{path}: is a directory, not a spec file")
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror}")


@app.command()
@friendly_errors
def validate(
    files: Annotated[list[Path], typer.Argument(help="Spec files (YAML or JSON).")],
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also check against Clean Rooms and the stack, as the start function's "
            "preflight does (the sandbox's exports, or --stack).",
        ),
    ] = False,
    stack: Annotated[
        str | None,
        typer.Option(help="With --online: a deployed stack's name.", callback=stack_name),
    ] = None,
) -> None:
    """Check spec files exactly as the start function will: every error, with its field path."""
    from crq.spec import SpecInvalid, load_spec

    if online or stack:  # crq_local/validate_online.py
        from crq_local.validate_online import validate_online

        if bad := validate_online(files, stack):
            out.print(f"{bad} of {len(files)} file{'s' if len(files) != 1 else ''} invalid")
            raise typer.Exit(EXIT_FAILED)
        return
    bad = 0
    for path in files:
        try:
            spec = load_spec(_read(path), str(path))
        except CliError as exc:
            out.print(Text("✗ ", style="red") + Text(str(exc)), soft_wrap=True)
            bad += 1
        except SpecInvalid as exc:
            for line in exc.lines():
                out.print(Text("✗ ", style="red") + Text(line), soft_wrap=True)
            bad += 1
        else:
            note = cli_schedules.schedule_note(spec)
            out.print(
                Text("✓ ", style="green") + Text(f"{path}: OK (spec {spec.name}{note})"),
                soft_wrap=True,
            )
    if bad:
        out.print(f"{bad} of {len(files)} file{'s' if len(files) != 1 else ''} invalid")
        raise typer.Exit(EXIT_FAILED)


def parse_time(value: str) -> datetime:
    """An ISO 8601 date or time (UTC when no offset is given), or `now`."""
    if value.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-03-02T06:00:00Z or 2026-03-02"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Trigger(StrEnum):
    s3 = "s3"
    schedule = "schedule"


@app.command()
@friendly_errors
def render(
    file: Annotated[Path, typer.Argument(help="A spec file.")],
    at: Annotated[
        str,
        typer.Option(
            "--at",
            metavar="TIME",
            help="The run time placeholders are rendered from (ISO 8601, UTC by default).",
        ),
    ] = "now",
    trigger: Annotated[
        Trigger, typer.Option(help="The trigger the run pretends to have ({{ trigger }}).")
    ] = Trigger.s3,
    show_sensitive: Annotated[
        bool,
        typer.Option(
            "--show-sensitive", help="Show query parameter values (the API marks them sensitive)."
        ),
    ] = False,
) -> None:
    """Print the exact StartProtectedQuery request the spec produces at a time, as JSON."""
    from crq.spec import SpecInvalid, load_spec, redacted_request, render_request

    run_time = parse_time(at)
    try:
        spec = load_spec(_read(file), str(file))
        request = render_request(spec, spec.render_context(run_time, trigger.value))
    except SpecInvalid as exc:
        for line in exc.lines():
            err.print(line, soft_wrap=True, markup=False, emoji=False)
        raise typer.Exit(EXIT_FAILED) from None
    shown = request if show_sensitive else redacted_request(request)
    # Plain print: the output is JSON for pipes (`| jq`, `aws ... --cli-input-json`).
    print(json.dumps(shown, indent=2, ensure_ascii=False))


# ---- engine, sandbox, demo -------------------------------------------------------------------


@contextmanager
def _collaboration_errors() -> Iterator[None]:
    from crq_local.engine.config import CollaborationFileError

    try:
        yield
    except CollaborationFileError as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(f"{exc.filename or exc}: no such file")


def ensure_free(host: str, port: int, option: str) -> None:
    """Fail clearly on a port in use (werkzeug would print its own message and exit 1)."""
    from crq_local.sandbox.ports import PortInUse, check_free

    try:
        check_free(host, port, option)
    except PortInUse as exc:
        fail(str(exc))


DEFAULT_COLLABORATION = REPO_ROOT / "examples" / "collaboration.yaml"
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"


@app.command()
@friendly_errors
def engine(
    config: Annotated[
        Path, typer.Option("--config", metavar="FILE", help="The collaboration file.")
    ],
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port (0 picks a free one).", min=PORT_MIN, max=PORT_MAX)
    ] = 4599,
    pace: Annotated[Pace, typer.Option(help="How fast queries run.")] = Pace.demo,
) -> None:
    """Serve the local Clean Rooms engine over HTTP until Ctrl-C."""
    from crq_local.engine.server import RemoteHostRefused, run

    def ready(server: Any) -> None:
        out.print(f"crq engine listening on {server.url} ({config}); Ctrl-C stops it")
        out.print(f"export AWS_ENDPOINT_URL_CLEANROOMS={server.url}", markup=False)

    with _collaboration_errors():
        ensure_free(host, port, "--port")
        try:
            run(config, host, port, _timings(pace), on_ready=ready)
        except RemoteHostRefused as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror} (choose another with --port)")


@app.command()
@friendly_errors
def sandbox(
    config: Annotated[
        Path, typer.Option("--config", metavar="FILE", help="The collaboration file.")
    ] = DEFAULT_COLLABORATION,
    port: Annotated[
        int,
        typer.Option(help="Port of the AWS endpoint (moto; 0: free).", min=PORT_MIN, max=PORT_MAX),
    ] = 4566,
    engine_port: Annotated[
        int,
        typer.Option(
            help="Port of the Clean Rooms endpoint (0: free).", min=PORT_MIN, max=PORT_MAX
        ),
    ] = 4599,
    tick: Annotated[
        float,
        typer.Option(
            help="Seconds between ticks of the track schedule.",
            min=0.2,
            max=3600,
            callback=finite_seconds,
        ),
    ] = 5.0,
    pace: Annotated[Pace, typer.Option(help="How fast the engine runs queries.")] = Pace.demo,
    template: Annotated[
        Path, typer.Option(metavar="FILE", help="The stack's SAM template.")
    ] = DEFAULT_TEMPLATE,
    log_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Where the handlers' logs go (default: a temp file)."),
    ] = None,
) -> None:
    """The whole stack on loopback: AWS (moto), Clean Rooms (the engine), the handlers."""
    from crq_local.sandbox import SandboxError, SandboxOptions, serve

    options = SandboxOptions(
        collaboration=config,
        template=template,
        port=port,
        engine_port=engine_port,
        tick_seconds=tick,
        timings=_timings(pace),
        log_file=log_file,
    )
    with _collaboration_errors():
        try:
            serve(options, out)
        except SandboxError as exc:
            fail(str(exc))


@app.command()
@friendly_errors
def demo(
    pace: Annotated[Pace, typer.Option(help="How fast the engine runs queries.")] = Pace.demo,
    examples: Annotated[
        Path,
        typer.Option(
            metavar="DIR",
            help="A folder with collaboration.yaml and specs/demo.toml (the specs to upload "
            "and the event each must end in).",
        ),
    ] = REPO_ROOT / "examples",
) -> None:
    """Start the sandbox, upload the example specs, show how each run ends, stop."""
    from crq_local.demo import DemoFailed, run_demo

    try:
        run_demo(out, pace=pace.value, examples=examples)
    except DemoFailed as exc:
        fail(str(exc), EXIT_FAILED)


# ---- status, watch ---------------------------------------------------------------------------


def stack_outputs(stack: str) -> dict[str, str]:
    cloudformation = _client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            fail(f"stack {stack} does not exist in this account and region")
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def _table_name(stack: str | None) -> str:
    if stack:
        outputs = stack_outputs(stack)
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


def _ledger(stack: str | None) -> Any:
    from crq.adapters.dynamodb import DynamoLedger

    return DynamoLedger(_table_name(stack), _client("dynamodb"))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _duration(run: Run) -> str:
    ms = run.outcome.duration_ms if run.outcome else None
    return f"{ms / 1000:.1f} s" if ms is not None else ""


@app.command()
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
    from crq_local import run_view

    now = datetime.now(UTC)
    try:
        floor = run_view.parse_since(since, now) if since is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    ledger = _ledger(stack)
    runs = run_view.select(ledger.iter_recent(spec=spec, since=floor, now=now), limit, status_)
    if as_json:
        print(json.dumps([run_view.as_json(run) for run in runs], indent=2))
        return
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
            run_view.status_of(run),
            run.query_id or "",
            _when(run.query_create_time or run.created_at),
            _duration(run),
            f"{units:g}" if units is not None else "",
            Text(run_view.error_of(run), style="red"),
        )
    # Piped (a script, a CI log), nothing wraps lines: one run per line, however wide.
    shown = out if out.is_terminal else Console(highlight=False, width=STATUS_PIPED_WIDTH)
    shown.print(table)


def _find_membership(query_id: str, stack: str | None, cleanrooms: Any) -> str:
    """The membership of a query: from the ledger when it knows the run, else by asking."""
    if stack or os.environ.get("CRQ_TABLE_NAME"):
        run = _ledger(stack).find_by_query(query_id)
        if run is not None and run.membership_id:
            return str(run.membership_id)
    memberships = [
        m["id"]
        for page in cleanrooms.get_paginator("list_memberships").paginate(status="ACTIVE")
        for m in page.get("membershipSummaries", [])
    ]
    for membership in memberships:
        try:
            cleanrooms.get_protected_query(
                membershipIdentifier=membership, protectedQueryIdentifier=query_id
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                "ResourceNotFoundException",
                "AccessDeniedException",
                "ValidationException",
            ):
                continue
            raise
        return str(membership)
    fail(f"no membership of this account knows query {query_id}; name it with --membership")


@app.command()
@friendly_errors
def watch(
    query_id: Annotated[str, typer.Argument(help="The protected query's id.")],
    membership: Annotated[
        str | None, typer.Option(help="Membership id (default: found from the ledger).")
    ] = None,
    stack: Annotated[
        str | None, typer.Option(help="A deployed stack's name.", callback=stack_name)
    ] = None,
    interval: Annotated[
        float,
        typer.Option(help="Seconds between polls.", min=0.2, max=3600, callback=finite_seconds),
    ] = 1.0,
) -> None:
    """Follow a protected query until it ends; exit 0 if it succeeded, 1 otherwise."""
    from rich.live import Live
    from rich.spinner import Spinner

    cli_guard.check_ids(protectedQueryIdentifier=query_id)
    if membership is not None:
        cli_guard.check_ids(protectedQueryIdentifier=query_id, membershipIdentifier=membership)
    cleanrooms = _client("cleanrooms")
    membership_id = membership or _find_membership(query_id, stack, cleanrooms)
    started = time.monotonic()
    query: dict[str, Any] = {}
    with Live(Spinner("dots", text="asking Clean Rooms..."), console=out, transient=True) as live:
        while True:
            try:
                query = cleanrooms.get_protected_query(
                    membershipIdentifier=membership_id, protectedQueryIdentifier=query_id
                )["protectedQuery"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    fail(f"query {query_id} not found in membership {membership_id}")
                raise
            status_ = query["status"]
            elapsed = time.monotonic() - started
            live.update(Spinner("dots", text=f"{query_id}  {status_}  ({elapsed:.0f} s)"))
            if status_ in ENDED_STATUSES:
                break
            time.sleep(interval)
    _print_query(query)
    if query["status"] != "SUCCESS":
        raise typer.Exit(EXIT_FAILED)


def _print_query(query: dict[str, Any]) -> None:
    style = "green" if query["status"] == "SUCCESS" else "red"
    out.print(f"[bold {style}]{query['status']}[/]  query {query['id']}")
    stats = query.get("statistics", {})
    if "totalDurationInMillis" in stats:
        units = stats.get("billedResourceUtilization", {}).get("units")
        extra = f", {units:g} CRPU units" if units is not None else ""
        out.print(f"  took {stats['totalDurationInMillis'] / 1000:.1f} s{extra}")
    output = query.get("result", {}).get("output", {})
    location = output.get("s3", {}).get("location") or output.get("distribute", {}).get(
        "s3", {}
    ).get("location")
    if location:
        out.print(f"  results: {location}", markup=False)
    members = output.get("memberList") or output.get("distribute", {}).get("memberList")
    if members:
        out.print("  results sent to " + ", ".join(m["accountId"] for m in members))
    if query.get("error"):
        out.print(f"  {query['error'].get('code')}: {query['error'].get('message')}", markup=False)


# Commands kept in modules of their own.
from crq_local import cli_schedules  # noqa: E402  (needs the helpers above)

cli_schedules.register(app, sys.modules[__name__])


def main(argv: list[str] | None = None) -> None:
    """The `crq` console script: one line on stderr for any failure, never a traceback."""
    sys.exit(cli_guard.run(app, argv, err))


if __name__ == "__main__":  # `python -m crq_local.cli`, as `crq demo` starts the sandbox
    main()
