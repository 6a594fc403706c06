"""`crq validate FILE...`: check spec files exactly as the start function will.

`--online` (or `--stack NAME`) runs the deployed start path's preflight from the CLI too. One
code path: the spec is loaded and rendered as the start function does (`crq.spec`), and checked
by `crq.preflight.check_request` with the deployed adapter (`CleanRoomsGateway`), using the
caller's credentials. The stack's side (MembershipIds, ResultBucketNames, ...) comes from the
start function's own environment (`--stack NAME`), or from the variables `crq sandbox` exports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from crq_local.cli import aws, console
from crq_local.cli.guard import EXIT_FAILED, CliError, fail, friendly_errors, stack_name
from crq_local.cli.schedules import schedule_note

# Settings the functions get from Powertools' variables; the CLI does not need them set.
_POWERTOOLS_DEFAULTS = {"POWERTOOLS_SERVICE_NAME": "crq", "POWERTOOLS_METRICS_NAMESPACE": "crq"}


def read_spec(path: Path) -> bytes:
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

    if online or stack:
        if bad := validate_online(files, stack):
            console.out.print(f"{bad} of {len(files)} file{'s' if len(files) != 1 else ''} invalid")
            raise typer.Exit(EXIT_FAILED)
        return
    bad = 0
    for path in files:
        try:
            spec = load_spec(read_spec(path), str(path))
        except CliError as exc:
            console.out.print(Text("✗ ", style="red") + Text(str(exc)), soft_wrap=True)
            bad += 1
        except SpecInvalid as exc:
            for line in exc.lines():
                console.out.print(Text("✗ ", style="red") + Text(line), soft_wrap=True)
            bad += 1
        else:
            note = schedule_note(spec)
            console.out.print(
                Text("✓ ", style="green") + Text(f"{path}: OK (spec {spec.name}{note})"),
                soft_wrap=True,
            )
    if bad:
        console.out.print(f"{bad} of {len(files)} file{'s' if len(files) != 1 else ''} invalid")
        raise typer.Exit(EXIT_FAILED)


def stack_settings(stack: str | None) -> Any:
    """The start function's Settings: from the deployed function, or the sandbox's exports."""
    from crq.errors import ConfigError
    from crq.settings import Settings

    if stack:
        outputs = aws.stack_outputs(stack)
        function = outputs.get("StartFunctionName")
        if not function:
            fail(f"stack {stack} has no StartFunctionName output: is it a crq stack?")
        config = aws.client("lambda").get_function_configuration(FunctionName=function)
        environment: Mapping[str, str] = (config.get("Environment") or {}).get("Variables") or {}
        where = f"function {function}"
    else:
        environment = os.environ
        where = "the environment"
        if not environment.get("CRQ_MEMBERSHIP_IDS"):
            fail(
                "CRQ_MEMBERSHIP_IDS is not set: paste the export lines `crq sandbox` prints, "
                "or name a deployed stack with --stack"
            )
    try:
        return Settings.from_env({**_POWERTOOLS_DEFAULTS, **environment})
    except ConfigError as exc:
        fail(f"{where}: {exc}")


def validate_online(files: list[Path], stack: str | None) -> int:
    """Check each file offline, then against the collaboration and the stack. Returns how many
    files have problems (each printed with its field)."""
    from crq.adapters.cleanrooms import CleanRoomsGateway
    from crq.preflight import CachedReader, check_request
    from crq.spec import SpecInvalid, load_spec, render_request

    settings = stack_settings(stack)
    client = aws.client("cleanrooms")
    reader = CachedReader(
        CleanRoomsGateway(client=client, start_client=client), clock=lambda: datetime.now(UTC)
    )
    bad = 0
    now = datetime.now(UTC)
    for path in files:
        try:
            spec = load_spec(read_spec(path), str(path))
            request = render_request(spec, spec.render_context(now, "s3"))
        except CliError as exc:
            _line(False, str(exc))
            bad += 1
            continue
        except SpecInvalid as exc:
            for line in exc.lines():
                _line(False, line)
            bad += 1
            continue
        report = check_request(request, settings, reader)
        for problem in report.problems:
            _line(False, f"{path}: {problem.field or '<file>'}: {problem.message}")
        for read in report.skipped:
            console.out.print(
                Text("! ", style="yellow")
                + Text(f"{path}: not checked: {read} could not be read (see the log)"),
                soft_wrap=True,
            )
        if report.problems:
            bad += 1
        else:
            _line(True, f"{path}: OK online (spec {spec.name})")
    return bad


def _line(ok: bool, text: str) -> None:
    mark = Text("✓ ", style="green") if ok else Text("✗ ", style="red")
    console.out.print(mark + Text(text), soft_wrap=True)
