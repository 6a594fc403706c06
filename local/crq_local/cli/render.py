"""`crq render FILE [--at TIME]`: the exact StartProtectedQuery request a spec produces."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from crq_local.cli import console
from crq_local.cli.guard import EXIT_FAILED, friendly_errors
from crq_local.cli.validate import read_spec


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
        spec = load_spec(read_spec(file), str(file))
        request = render_request(spec, spec.render_context(run_time, trigger.value))
    except SpecInvalid as exc:
        for line in exc.lines():
            console.err.print(line, soft_wrap=True, markup=False, emoji=False)
        raise typer.Exit(EXIT_FAILED) from None
    shown = request if show_sensitive else redacted_request(request)
    # Plain print: the output is JSON for pipes (`| jq`, `aws ... --cli-input-json`).
    print(json.dumps(shown, indent=2, ensure_ascii=False))
