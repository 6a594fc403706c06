"""Lambda's part, played in-process: the handler, its environment, a context, one call at a time.

Several functions share this one process, and environment variables are process-global: the
runtime never changes `os.environ` (glibc's getenv is not thread-safe, and the engine's and the
servers' threads call it). A function's environment (the template's and Lambda's own variables)
is handed to its handler module at cold start instead: a module with
`handler_for(environ) -> handler` builds its collaborators from that mapping (crq's handlers do);
others get the handler named in the template as it is. What is common to every function (AWS
endpoints, credentials, region, Powertools' service) the sandbox sets once, before its threads
start. Invocations are serialised; what the handler prints (Powertools logs and EMF metrics)
goes to the sandbox's handler log, not to the user's terminal.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

Handler = Callable[[Any, Any], Any]


class _FunctionStdout(io.TextIOBase):
    """A function's stdout: the log of the runtime invoking it now, else the process's stdout.

    A handler module binds the stream it logs to when it is imported (Powertools' `Logger()`
    keeps `sys.stdout`), and a module is imported once per process while sandboxes come and go
    (tests start several). Bound to this one object, a handler never writes to a closed log."""

    def __init__(self) -> None:
        super().__init__()
        self.log: TextIO | None = None

    def writable(self) -> bool:
        return True

    def _target(self) -> TextIO | None:
        log = self.log
        return log if log is not None and not log.closed else sys.__stdout__

    def write(self, text: str) -> int:
        target = self._target()
        return target.write(text) if target is not None else len(text)

    def flush(self) -> None:
        target = self._target()
        if target is not None:
            target.flush()


FUNCTION_STDOUT = _FunctionStdout()


@dataclass(frozen=True)
class FunctionDefinition:
    """What Lambda knows about one function: name, handler path, environment, limits."""

    logical_id: str
    name: str
    handler: str  # "package.module.function", as in the template
    environment: Mapping[str, str]
    timeout_seconds: int = 30
    memory_mb: int = 256
    region: str = "us-east-1"
    account_id: str = "123456789012"
    # EventInvokeConfig: retries of a failed asynchronous invocation, and where it goes after.
    async_retries: int = 2
    on_failure_queue_url: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"


class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes Powertools reads)."""

    def __init__(self, function: FunctionDefinition) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + function.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """How one invocation went, for the router's retry decision and the sandbox's display."""

    function: str
    request_id: str
    ok: bool
    duration_ms: float
    error_type: str | None = None
    error_message: str | None = None
    result: Any = None

    @property
    def error(self) -> str | None:
        if self.ok:
            return None
        return f"{self.error_type}: {self.error_message}"


def lambda_environment(function: FunctionDefinition) -> dict[str, str]:
    """The variables Lambda itself sets for a function, beside the template's."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    }


def import_handler(path: str, environment: Mapping[str, str]) -> Handler:
    """Resolve "handlers.start.handler" the way Lambda's Python runtime does, with the function's
    environment given to the module's `handler_for` when it has one (see the module docstring)."""
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {path!r} is not of the form module.function")
    module = importlib.import_module(module_name)
    handler_for = getattr(module, f"{attribute}_for", None)
    handler = handler_for(environment) if callable(handler_for) else getattr(module, attribute)
    if not callable(handler):
        raise TypeError(f"handler {path!r} is not callable")
    return handler  # type: ignore[no-any-return]


@dataclass
class LambdaRuntime:
    """Invokes the stack's functions in this process, one at a time."""

    functions: Mapping[str, FunctionDefinition]
    log: TextIO
    # Injected for tests of the router; by default the handler path is imported on first use,
    # which is the function's cold start, with the function's environment.
    resolve: Callable[[str, Mapping[str, str]], Handler] = import_handler
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _handlers: dict[str, Handler] = field(default_factory=dict, init=False)

    def function(self, logical_id: str) -> FunctionDefinition:
        return self.functions[logical_id]

    def invoke(self, logical_id: str, event: Any) -> Invocation:
        function = self.functions[logical_id]
        with self._lock:
            context = LambdaContext(function)
            env = {**function.environment, **lambda_environment(function)}
            started = time.monotonic()
            FUNCTION_STDOUT.log = self.log
            with contextlib.redirect_stdout(FUNCTION_STDOUT), contextlib.redirect_stderr(self.log):
                try:
                    handler = self._handlers.get(logical_id)
                    if handler is None:
                        handler = self._handlers[logical_id] = self.resolve(function.handler, env)
                    result = handler(event, context)
                    error_type = error_message = None
                except Exception as exc:  # a failed invocation, as Lambda reports it
                    result = None
                    error_type, error_message = type(exc).__name__, str(exc)
                    # Lambda writes the stack trace to the function's log; so do we.
                    traceback.print_exc(file=self.log)
                self.log.flush()
            duration_ms = (time.monotonic() - started) * 1000
            if error_type is None and duration_ms > function.timeout_seconds * 1000:
                # Lambda would have stopped the handler; it cannot be stopped here, but the
                # invocation counts as failed all the same.
                error_type = "TimeoutError"
                error_message = f"Task timed out after {function.timeout_seconds} seconds"
            invocation = Invocation(
                function=logical_id,
                request_id=context.aws_request_id,
                ok=error_type is None,
                duration_ms=duration_ms,
                error_type=error_type,
                error_message=error_message,
                result=result,
            )
            self._record(function, invocation)
            return invocation

    def _record(self, function: FunctionDefinition, invocation: Invocation) -> None:
        # The REPORT line Lambda writes after every invocation, as one JSON line.
        report = {
            "type": "REPORT",
            "function": function.name,
            "requestId": invocation.request_id,
            "durationMs": round(invocation.duration_ms, 1),
            "error": invocation.error,
        }
        self.log.write(json.dumps(report) + "\n")
        self.log.flush()
