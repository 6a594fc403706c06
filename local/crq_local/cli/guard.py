"""The `crq` commands' guards: every failure is one line on stderr, never a traceback.

Commands report the failures they know (`friendly_errors`: a `CliError`, botocore's connection,
credential and client errors, a file that cannot be read); the console script's outer guard
(`run`) covers the rest: click's usage errors (a bad option value, a missing argument) as one
line instead of a boxed panel, and, as a last resort, an unexpected exception as one line that
asks for a report (`CRQ_DEBUG=1` shows the traceback instead). The option callbacks here check
values before any call.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
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
from rich.text import Text

from crq_local.cli import console

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILED = 1  # the command ran and the answer is "no" (invalid spec, query failed)
EXIT_USAGE = 2  # the command could not run (missing file, bad config, nothing listening)
EXIT_INTERRUPTED = 130
EXIT_BUG = 70  # EX_SOFTWARE: crq itself failed
DEBUG_VARIABLE = "CRQ_DEBUG"

# Ports a socket can bind: typer options use these bounds.
PORT_MIN, PORT_MAX = 0, 65_535
# A stack name or id as CloudFormation accepts it.
_STACK_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9]{0,127}|arn:aws[-a-z]*:cloudformation:.+")


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
    print_error(console.err, message)
    raise typer.Exit(exit_code)


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
    from crq.spec.apimodel import check_shape

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
