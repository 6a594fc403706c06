"""The `crq` typer app: every command registered in the order `crq --help` lists them, and
`main`, the console script (`crq = "crq_local.cli.app:main"`).

Commands import their heavy dependencies (boto3, crq's domain, the engine) when they run, so
`crq --help` and a usage error stay fast.
"""

from __future__ import annotations

import sys

import typer

from crq_local.cli import console, guard
from crq_local.cli.demo import demo
from crq_local.cli.engine import engine
from crq_local.cli.render import render
from crq_local.cli.sandbox import sandbox
from crq_local.cli.schedules import backfill, schedules, trigger
from crq_local.cli.status import status
from crq_local.cli.validate import validate
from crq_local.cli.watch import watch

app = typer.Typer(
    name="crq",
    help="Run AWS Clean Rooms protected queries unattended, and be told how each one ended.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
for command in (validate, render, engine, sandbox, demo, status, watch):
    app.command(command.__name__)(command)
app.command("schedules")(schedules)
app.command("trigger")(trigger)
app.command("backfill")(backfill)


def main(argv: list[str] | None = None) -> None:
    """The `crq` console script: one line on stderr for any failure, never a traceback."""
    sys.exit(guard.run(app, argv, console.err))


if __name__ == "__main__":
    main()
