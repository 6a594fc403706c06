"""The `crq` console script's outer guard: every failure is one line on stderr, never a traceback.

Commands report the failures they know (`cli.friendly_errors`); this guard covers the rest:
click's usage errors (a bad option value, a missing argument) as one line instead of a boxed
panel, and, as a last resort, an unexpected exception as one line that asks for a report
(`CRQ_DEBUG=1` shows the traceback instead).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BUG = 70  # EX_SOFTWARE: crq itself failed
DEBUG_VARIABLE = "CRQ_DEBUG"

# Ports a socket can bind: typer options use these bounds.
PORT_MIN, PORT_MAX = 0, 65_535
# A stack name or id as CloudFormation accepts it.
_STACK_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9]{0,127}|arn:aws[-a-z]*:cloudformation:.+")


def one_line(message: str) -> str:
    """Messages quote user input and exceptions: keep them on one line."""
    return " ".join(message.split())


def print_error(console: Console, message: str) -> None:
    console.print(Text("error: ", style="bold red") + Text(one_line(message)), soft_wrap=True)


# typer >= 0.22 ships its own copy of click; older ones use click itself: accept both.
try:
    import click as _click

    _CLICK_USAGE: tuple[type[Exception], ...] = (_click.ClickException,)
    _CLICK_EXIT: tuple[type[BaseException], ...] = (_click.exceptions.Exit,)
    _CLICK_ABORT: tuple[type[BaseException], ...] = (_click.exceptions.Abort,)
except ImportError:  # pragma: no cover
    _CLICK_USAGE = _CLICK_EXIT = _CLICK_ABORT = ()
_USAGE_ERRORS: tuple[type[Exception], ...] = (
    *_CLICK_USAGE,
    *((typer.TyperException,) if hasattr(typer, "TyperException") else ()),
)
_EXITS: tuple[type[BaseException], ...] = (typer.Exit, *_CLICK_EXIT)
_ABORTS: tuple[type[BaseException], ...] = (typer.Abort, *_CLICK_ABORT)


def run(app: typer.Typer, argv: Sequence[str] | None, console: Console) -> int:
    """Run the app; return the exit code. Nothing but SystemExit leaves this function."""
    try:
        result = app(args=argv, prog_name="crq", standalone_mode=False)
    except _EXITS as exc:  # raised outside a command's context
        return int(getattr(exc, "exit_code", 0))
    except _USAGE_ERRORS as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `crq GROUP` alone: the help is the answer
            console.print(exc.format_message(), markup=False, highlight=False)  # type: ignore[attr-defined]
            return EXIT_USAGE
        context = getattr(exc, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        print_error(console, exc.format_message() + hint)  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except _ABORTS:
        print_error(console, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        print_error(
            console,
            f"unexpected {type(exc).__name__}: {exc}. This is a bug in crq: please report it "
            f"with the command you ran ({DEBUG_VARIABLE}=1 shows the traceback).",
        )
        return EXIT_BUG
    return result if isinstance(result, int) else 0


def finite_seconds(value: float) -> float:
    """An option callback: NaN and infinity pass click's range checks but mean nothing here."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number of seconds")
    return value


def stack_name(value: str | None) -> str | None:
    """An option callback for --stack: a CloudFormation stack name, checked before any call."""
    if value is not None and not _STACK_NAME.fullmatch(value):
        raise typer.BadParameter(
            f"{value!r} is not a stack name (a letter, then letters, digits or '-', "
            "at most 128 characters)"
        )
    return value


def check_ids(**ids: Any) -> None:
    """Check Clean Rooms ids against the API model before a call, with a sentence per problem."""
    from crq.apimodel import check_shape

    errors = [e for e in check_shape("GetProtectedQueryInput", dict(ids)) if e.field in ids]
    if errors:
        error = errors[0]
        label = {
            "membershipIdentifier": "membership id",
            "protectedQueryIdentifier": "query id",
        }.get(error.field, error.field)
        value = ids.get(error.field, "")
        raise typer.BadParameter(
            f"{value!r} is not a {label}: it {error.message} "
            "(ids look like 0f0e0d0c-0b0a-4908-8706-050403020100)"
        )
