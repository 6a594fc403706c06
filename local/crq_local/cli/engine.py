"""`crq engine --config FILE`: the local Clean Rooms engine alone, over HTTP until Ctrl-C.

Also what the commands that start the engine share (`sandbox`, `demo`): its pace, a collaboration
file's errors as one line, a port in use named before anything binds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crq_local.cli import console
from crq_local.cli.guard import PORT_MAX, PORT_MIN, fail, friendly_errors

if TYPE_CHECKING:
    from crq_local.engine.timings import Timings


class Pace(StrEnum):
    """How fast the local engine runs queries."""

    fast = "fast"  # tens of milliseconds: tests
    demo = "demo"  # a few seconds: a pace a person can watch


def timings(pace: Pace) -> Timings:
    from crq_local.engine.timings import Timings

    return Timings.fast() if pace is Pace.fast else Timings.demo()


@contextmanager
def collaboration_errors() -> Iterator[None]:
    from crq_local.engine.config import CollaborationFileError

    try:
        yield
    except CollaborationFileError as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(f"{exc.filename or exc}: no such file")


def ensure_free(host: str, port: int, option: str) -> None:
    """Fail clearly on a port in use (werkzeug would print its own message and exit 1)."""
    from crq_local.sandbox.listen import PortInUse, check_free

    try:
        check_free(host, port, option)
    except PortInUse as exc:
        fail(str(exc))


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
        console.out.print(f"crq engine listening on {server.url} ({config}); Ctrl-C stops it")
        console.out.print(f"export AWS_ENDPOINT_URL_CLEANROOMS={server.url}", markup=False)

    with collaboration_errors():
        ensure_free(host, port, "--port")
        try:
            run(config, host, port, timings(pace), on_ready=ready)
        except RemoteHostRefused as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror} (choose another with --port)")
