"""`crq demo`: start the sandbox, upload the example specs, show how each run ends, stop.

The demo itself (its own sandbox process, the uploads, the summary) is `crq_local.demo`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crq_local.cli import console
from crq_local.cli.engine import Pace
from crq_local.cli.guard import EXIT_FAILED, fail, friendly_errors
from crq_local.cli.sandbox import REPO_ROOT


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
        run_demo(console.out, pace=pace.value, examples=examples)
    except DemoFailed as exc:
        fail(str(exc), EXIT_FAILED)
