"""The sandbox's Lambda stand-in never changes the process environment.

Under load the sandbox died in glibc `getenv` (SIGSEGV): its runtime set each function's
variables in `os.environ` for every invocation while engine threads (DuckDB connect) read the
environment. Now a function's environment reaches its handler module as a mapping at cold start.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from crq.errors import ConfigError
from crq_local.sandbox.lambda_runtime import FunctionDefinition, LambdaRuntime, import_handler

ENVIRONMENT = {
    "CRQ_TABLE_NAME": "runs-from-the-template",
    "CRQ_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
    "CRQ_SPECS_BUCKET": "specs",
    "POWERTOOLS_SERVICE_NAME": "crq",
    "POWERTOOLS_METRICS_NAMESPACE": "crq",
}


@contextlib.contextmanager
def environment_frozen() -> Iterator[None]:
    """Any change to the process environment meanwhile fails the test (os.environ's writes call
    these). Not a fixture: pytest itself sets PYTEST_CURRENT_TEST between a test's phases."""

    def refuse(*_: Any) -> None:
        raise AssertionError("the process environment was changed")

    saved = os.putenv, os.unsetenv
    os.putenv, os.unsetenv = refuse, refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        os.putenv, os.unsetenv = saved  # type: ignore[assignment]


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> list[Mapping[str, str]]:
    """A handler module like crq's: `handler_for(environ)` builds the handler from a mapping."""
    given: list[Mapping[str, str]] = []
    module = types.ModuleType("fake_handlers")

    def handler_for(environ: Mapping[str, str]) -> Any:
        given.append(dict(environ))
        return lambda event, context: {"table": environ["CRQ_TABLE_NAME"], "event": event}

    module.handler_for = handler_for  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_handlers", module)
    return given


def test_invocations_hand_the_environment_over_without_touching_os_environ(
    fake_module: list[Mapping[str, str]],
) -> None:
    # Given a function whose template environment names its table, and a thread reading the
    # environment all along (as the engine's threads do)
    function = FunctionDefinition("Fn", "crq-fn", "fake_handlers.handler", ENVIRONMENT)
    runtime = LambdaRuntime({"Fn": function}, io.StringIO())
    stop = threading.Event()

    def read_environment() -> None:
        while not stop.is_set():
            os.getenv("HOME")

    reader = threading.Thread(target=read_environment)
    reader.start()
    try:
        # When it is invoked several times
        with environment_frozen():
            results = [runtime.invoke("Fn", {"n": n}) for n in range(3)]
    finally:
        stop.set()
        reader.join()

    # Then each invocation succeeded with the template's value, the module got the function's
    # environment once (its cold start), Lambda's own variables included, and os.environ
    # never changed (the fixture fails any change)
    assert [r.result for r in results] == [
        {"table": "runs-from-the-template", "event": {"n": n}} for n in range(3)
    ]
    [given] = fake_module
    assert given["CRQ_TABLE_NAME"] == "runs-from-the-template"
    assert given["AWS_LAMBDA_FUNCTION_NAME"] == "crq-fn"
    assert (
        "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
        or os.environ["AWS_LAMBDA_FUNCTION_NAME"] != "crq-fn"
    )


@pytest.mark.parametrize("path", ["handlers.start.handler", "handlers.track.handler"])
def test_crq_handlers_read_their_settings_from_the_mapping_given(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a process environment that has every setting, and a function environment without
    # the table name
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    incomplete = {k: v for k, v in ENVIRONMENT.items() if k != "CRQ_TABLE_NAME"}

    # When the sandbox resolves the handler with the function's environment, it reads that
    # mapping, not os.environ: the missing variable is named
    with environment_frozen():
        with pytest.raises(ConfigError, match="CRQ_TABLE_NAME is not set"):
            import_handler(path, incomplete)
        # And with the full mapping the handler is built
        assert callable(import_handler(path, ENVIRONMENT))
