"""`crq sandbox`: the whole stack on loopback, AWS (moto), Clean Rooms (the engine), the handlers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crq_local.cli import console
from crq_local.cli.engine import Pace, collaboration_errors, timings
from crq_local.cli.guard import PORT_MAX, PORT_MIN, fail, finite_seconds, friendly_errors

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_COLLABORATION = REPO_ROOT / "examples" / "collaboration.yaml"
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"


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
        timings=timings(pace),
        log_file=log_file,
    )
    with collaboration_errors():
        try:
            serve(options, console.out)
        except SandboxError as exc:
            fail(str(exc))
