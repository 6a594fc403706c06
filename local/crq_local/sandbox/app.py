"""The sandbox: crq's whole stack on loopback, offline.

    moto server (S3, DynamoDB, SNS, SQS, EventBridge, Scheduler, CloudWatch)   --port
    the local Clean Rooms engine                                                --engine-port
    the template's resources on moto (stack_resources.py)
    the event router: EventBridge rules -> SQS -> the handlers, in this process (router.py)
    the track schedule, ticking every --tick seconds (ticker.py)
    the spec schedules, firing at their times in their zones (spec_clock.py)
    a downstream consumer: an SQS queue subscribed to the topic, printed as messages arrive

Everything goes through the HTTP endpoints, as the deployed stack does: the handlers build
their boto3 clients from the environment (AWS_ENDPOINT_URL -> moto, AWS_ENDPOINT_URL_CLEANROOMS
-> the engine), the engine writes results to moto's S3 and puts its status events on moto's
EventBridge, and moto's S3 sends `Object Created` to EventBridge when a spec is uploaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

import boto3
import yaml
from rich.console import Console

from crq_local import stack
from crq_local.sandbox.consumer import NotificationConsumer, subscribe_queue
from crq_local.sandbox.display import delivery_line, tick_failure_line
from crq_local.sandbox.exports import READY_MARKER, export_lines, write_aws_config
from crq_local.sandbox.lambda_runtime import Handler, Invocation, LambdaRuntime, import_handler
from crq_local.sandbox.listen import PortInUse, check_free
from crq_local.sandbox.notifications import ReceivedNotification, compact_line
from crq_local.sandbox.router import Delivery, EventRouter
from crq_local.sandbox.spec_clock import Firing, SpecScheduleClock
from crq_local.sandbox.stack_resources import (
    AwsClients,
    SandboxStack,
    create_bucket,
    create_stack,
)
from crq_local.sandbox.ticker import ScheduleTicker

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

    from crq_local.engine.config import EngineConfig
    from crq_local.engine.engine import Engine
    from crq_local.engine.server import EngineServer
    from crq_local.engine.timings import Timings

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
START_FUNCTION = "StartFunction"
# The start function's variables that preflight reads (crq.settings), exported for the CLI.
PREFLIGHT_VARIABLES = (
    "CRQ_MEMBERSHIP_IDS",
    "CRQ_RESULT_BUCKET_NAMES",
    "CRQ_ANALYSIS_TEMPLATE_ARNS",
    "CRQ_MAX_WORKER_TYPE",
    "CRQ_MAX_WORKER_COUNT",
)
TRACK_FUNCTION = "TrackFunction"  # docs/design.md: the function the track schedule invokes
NOTIFICATIONS_TOPIC = "NotificationsTopic"
SPECS_BUCKET = "SpecsBucket"
RUNS_TABLE = "RunsTable"
DEAD_LETTER_QUEUE = "EventsDeadLetterQueue"
SCHEDULE_GROUP = "SpecSchedules"


class SandboxError(Exception):
    """The sandbox cannot start; the message says why (e.g. a port in use)."""


@dataclass(frozen=True)
class SandboxOptions:
    collaboration: Path
    template: Path = stack.TEMPLATE_PATH
    host: str = "127.0.0.1"
    port: int = 4566  # 0 picks a free port
    engine_port: int = 4599
    tick_seconds: float = 5.0
    timings: Timings | None = None  # the engine's; Timings.demo() by default
    log_file: Path | None = None
    stack_name: str = "crq-sandbox"
    # Where the example specs write results: a bucket of the user's, not part of the stack.
    results_bucket: str = "crq-sandbox-results"
    template_parameters: dict[str, Any] = field(default_factory=dict)


def caller_memberships(config: EngineConfig) -> list[str]:
    """The caller's membership ids, in file order (the stack's MembershipIds parameter)."""
    from crq_local.engine.config import membership_id

    return [
        membership_id(collaboration, member)
        for collaboration in config.collaborations
        for member in collaboration.members
        if member.accountId == config.accountId
    ]


def _shared_environment(template: dict[str, Any], parameters: Mapping[str, Any]) -> dict[str, str]:
    """The functions' variables that are the same for every function and known before the stack
    exists (Powertools' service, namespace and log level): set once for the whole process, as
    Powertools reads them when a handler module is imported."""
    values = {**stack.parameter_defaults(template), **parameters}
    shared: dict[str, str] = {}
    for logical_id in stack.function_ids(template):
        for name, value in stack.function_environment(template, logical_id).items():
            if not name.startswith("POWERTOOLS_"):
                continue
            if isinstance(value, dict) and set(value) == {"Ref"}:
                value = values.get(value["Ref"])
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                shared[name] = str(value)
    return shared


def _quiet_moto_handler() -> type:
    """moto's request handler without werkzeug's line per request (moto is imported lazily)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietMotoHandler(MotoRequestHandler):  # type: ignore[misc]
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # a line per request would drown what the sandbox prints

    return QuietMotoHandler


class Sandbox:
    """Start it, use its `exports`, stop it. Not reentrant: one per process at a time."""

    def __init__(
        self,
        options: SandboxOptions,
        console: Console | None = None,
        *,
        resolve_handler: Callable[[str, Mapping[str, str]], Handler] = import_handler,
    ) -> None:
        """`resolve_handler` turns a template Handler path into the function Lambda would
        call; tests of the wiring inject their own, everyone else gets the real handlers."""
        self.options = options
        self._resolve_handler = resolve_handler
        self.console = pinned(console or Console())
        self.exports: dict[str, str] = {}
        self.stack: SandboxStack | None = None
        self.engine: Engine | None = None
        self.log_path: Path | None = None
        self._saved_env: dict[str, str | None] = {}
        self._moto: BaseWSGIServer | None = None
        self._moto_thread: threading.Thread | None = None
        self._moto_patches = contextlib.ExitStack()
        self._engine_server: EngineServer | None = None
        self._log: IO[str] | None = None
        self._runtime: LambdaRuntime | None = None
        self._workers: list[
            EventRouter | ScheduleTicker | NotificationConsumer | SpecScheduleClock
        ] = []
        self._config_dir: Path | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        """Start everything; on any failure stop what was started and raise."""
        from crq_local.engine.config import load_config

        # Refuse a bad collaboration file or template before anything listens.
        config = load_config(self.options.collaboration)
        try:
            template = stack.load_template(self.options.template)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise SandboxError(f"{self.options.template}: cannot read the template: {exc}") from exc
        memberships = caller_memberships(config)
        for port, option, purpose in (
            (self.options.port, "--port", "the AWS endpoint"),
            (self.options.engine_port, "--engine-port", "the Clean Rooms engine"),
        ):
            try:
                check_free(self.options.host, port, option)
            except PortInUse as exc:
                raise SandboxError(exc.describe(purpose)) from exc
        try:
            self._start(config, template, memberships)
        except BaseException:
            self.stop()
            raise
        return self.exports

    def _start(
        self, config: EngineConfig, template: dict[str, Any], memberships: list[str]
    ) -> None:
        from crq_local.engine.engine import Engine
        from crq_local.engine.server import make_server
        from crq_local.engine.timings import Timings

        region = config.region
        # The process environment is set here, before any of the sandbox's threads starts, and
        # restored after they all stopped: never while they run (glibc getenv is not
        # thread-safe). Each function's own variables reach its handler as a mapping.
        # Every ARN moto makes (topic, queues, rules) then names the collaboration's account.
        parameters = {
            "MembershipIds": memberships,
            # preflight refuses result buckets the stack may not list: allow the sandbox's own
            "ResultBucketNames": [self.options.results_bucket],
            **self.options.template_parameters,
        }
        self._set_env(
            {"MOTO_ACCOUNT_ID": config.accountId, **_shared_environment(template, parameters)}
        )
        moto_server = self._bind_moto()
        aws_url = f"http://{self.options.host}:{moto_server.server_address[1]}"
        self._set_env(
            {
                "AWS_ENDPOINT_URL": aws_url,
                **CREDENTIALS,
                "AWS_DEFAULT_REGION": region,
                "AWS_REGION": region,
            }
        )
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
            self._unset_env(name)
        # The engine's port, bound now, so its URL is in the environment before threads run.
        self.engine = Engine(config, timings=self.options.timings or Timings.demo())
        try:
            engine_server = make_server(self.engine, self.options.host, self.options.engine_port)
        except (OSError, SystemExit) as exc:  # werkzeug exits on a port taken meanwhile
            raise self._listen_error(
                self.options.engine_port, "the Clean Rooms engine", "--engine-port", exc
            ) from exc
        self._set_env({"AWS_ENDPOINT_URL_CLEANROOMS": engine_server.url})
        self._serve_moto(moto_server, aws_url)
        self._engine_server = engine_server.start()

        # A config file of the sandbox's own for its process and the shells that paste its
        # exports: the user's ~/.aws/config is neither read nor changed (issue 13).
        self._config_dir = Path(tempfile.mkdtemp(prefix="crq-sandbox-aws-"))
        config_file = write_aws_config(self._config_dir, region)
        self._set_env({"AWS_CONFIG_FILE": str(config_file)})

        clients = _clients(aws_url, region)
        try:
            self.stack = create_stack(
                template,
                clients,
                stack_name=self.options.stack_name,
                region=region,
                account_id=config.accountId,
                parameters=parameters,
            )
        except (stack.UnresolvedReference, ValueError) as exc:
            # The template refers to something the sandbox does not create: say so plainly.
            raise SandboxError(f"{self.options.template}: cannot build the stack: {exc}") from exc
        create_bucket(clients.s3, self.options.results_bucket, region)

        self._start_workers(clients)
        self.exports = {
            "AWS_ENDPOINT_URL": aws_url,
            "AWS_ENDPOINT_URL_CLEANROOMS": self._engine_server.url,
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": str(config_file),
            "CRQ_SPECS_BUCKET": self.stack.buckets[SPECS_BUCKET],
            "CRQ_TOPIC_ARN": self.stack.topics[NOTIFICATIONS_TOPIC],
            "CRQ_TABLE_NAME": self.stack.tables[RUNS_TABLE],
            "CRQ_RESULTS_BUCKET": self.options.results_bucket,
            "CRQ_DEAD_LETTER_QUEUE_URL": self.stack.queues[DEAD_LETTER_QUEUE].url,
        }
        if SCHEDULE_GROUP in self.stack.schedule_groups:
            self.exports["CRQ_SCHEDULE_GROUP"] = self.stack.schedule_groups[SCHEDULE_GROUP]
        if memberships:
            self.exports["CRQ_MEMBERSHIP_ID"] = memberships[0]
        # What preflight checks against (`crq validate --online` reads these).
        start_environment = self.stack.functions[START_FUNCTION].environment
        for name in PREFLIGHT_VARIABLES:
            if start_environment.get(name):
                self.exports[name] = start_environment[name]

    def _listen_error(
        self, port: int, purpose: str, option: str, exc: BaseException
    ) -> SandboxError:
        reason = getattr(exc, "strerror", None) or "address already in use"
        return SandboxError(PortInUse(self.options.host, port, reason, option).describe(purpose))

    def _bind_moto(self) -> BaseWSGIServer:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        from crq_local.sandbox import s3_deletes
        from crq_local.sandbox.moto_dynamodb import local_dynamodb

        s3_deletes.install()  # `aws s3 rm` on a spec sends Object Deleted, as S3 does
        # Each DynamoDB request atomic, as the service's are (the functions run concurrently),
        # and item reads at the service's cost, not the emulator's serializer's.
        self._moto_patches.enter_context(local_dynamodb())

        # moto's ThreadedMotoServer binds in its thread and waits forever when the port is
        # taken; binding here turns that into an error the user can act on.
        try:
            server = make_server(
                self.options.host,
                self.options.port,
                DomainDispatcherApplication(create_backend_app),
                threaded=True,
                request_handler=_quiet_moto_handler(),
            )
        except (OSError, SystemExit) as exc:  # werkzeug exits on a port taken meanwhile
            raise self._listen_error(self.options.port, "the AWS endpoint", "--port", exc) from exc
        self._moto = server
        return server

    def _serve_moto(self, server: BaseWSGIServer, url: str) -> None:
        self._moto_thread = threading.Thread(
            target=server.serve_forever, name="moto-server", daemon=True
        )
        self._moto_thread.start()
        # moto's state is per process: start from nothing, as a new account would.
        urllib.request.urlopen(
            urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10
        ).close()

    def _start_workers(self, clients: AwsClients) -> None:
        assert self.stack is not None
        self.log_path = (
            self.options.log_file or Path(tempfile.mkdtemp(prefix="crq-sandbox-")) / "handlers.log"
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a", encoding="utf-8", buffering=1)
        self._runtime = LambdaRuntime(self.stack.functions, self._log, self._resolve_handler)

        consumer_queue = subscribe_queue(
            clients.sns,
            clients.sqs,
            self.stack.topics[NOTIFICATIONS_TOPIC],
            f"{self.options.stack_name}-downstream-consumer",
        )
        self._workers.append(
            NotificationConsumer(clients.sqs, consumer_queue, self._on_notification, self._warn)
        )
        self._workers.append(
            EventRouter(
                clients.sqs, self._runtime, self.stack.routes, self._on_delivery, self._warn
            )
        )
        scheduler = clients.scheduler
        for schedule in self.stack.schedules:
            if schedule.function != TRACK_FUNCTION:
                continue  # only the track backstop runs on the sandbox's clock
            self._workers.append(
                ScheduleTicker(
                    self._runtime,
                    schedule.function,
                    _scheduled_event(scheduler, schedule.name),
                    self.options.tick_seconds,
                    self._on_tick,
                )
            )
        self._workers.append(
            SpecScheduleClock(
                scheduler,
                self._runtime,
                {f.name: logical_id for logical_id, f in self.stack.functions.items()},
                {TRACK_FUNCTION},
                self._on_fire,
            )
        )
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call twice."""
        # Ask every worker first: each may be in a poll of up to a second.
        for worker in self._workers:
            worker.request_stop()
        for worker in reversed(self._workers):
            worker.stop()
        self._workers.clear()
        if self._engine_server is not None:
            self._engine_server.shutdown()
            self._engine_server = None
        if self.engine is not None:
            self.engine.shutdown()
        if self._moto is not None:
            self._moto.shutdown()
            self._moto.server_close()
            if self._moto_thread is not None:
                self._moto_thread.join()
            self._moto = None
        self._moto_patches.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._restore_env()
        if self._config_dir is not None:
            shutil.rmtree(self._config_dir, ignore_errors=True)
            self._config_dir = None

    @property
    def tickers(self) -> list[ScheduleTicker]:
        """The schedules firing on the sandbox's clock (the track backstop)."""
        return [worker for worker in self._workers if isinstance(worker, ScheduleTicker)]

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- environment -------------------------------------------------------------------------

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _unset_env(self, name: str) -> None:
        if name in os.environ:
            self._saved_env.setdefault(name, os.environ[name])
            del os.environ[name]

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    # ---- display -----------------------------------------------------------------------------

    def _function_name(self, logical_id: str) -> str:
        assert self.stack is not None
        return self.stack.functions[logical_id].name

    def _on_delivery(self, delivery: Delivery) -> None:
        self.console.print(
            delivery_line(delivery, self._function_name(delivery.route.function)), soft_wrap=True
        )

    def _on_tick(self, invocation: Invocation) -> None:
        # Ticks every few seconds would drown everything else: only failures are shown.
        if not invocation.ok:
            self.console.print(
                tick_failure_line(invocation, self._function_name(invocation.function)),
                soft_wrap=True,
            )

    def _on_fire(self, firing: Firing) -> None:
        invocation = firing.invocation
        when = firing.scheduled_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        outcome = (invocation.result or {}).get("outcome", "") if invocation.ok else "failed"
        self.console.print(
            f"schedule {firing.schedule} fired for {when} -> "
            f"{self._function_name(invocation.function)}: {outcome}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )

    def _on_notification(self, notification: ReceivedNotification) -> None:
        self.console.print(compact_line(notification), soft_wrap=True)

    def _warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)

    def _world_lines(self) -> list[str]:
        from crq_local.sandbox.world_lines import collaboration_lines

        if self.engine is None:
            return []
        return collaboration_lines(self.engine.world, self.engine.members_dir)

    def banner(self) -> list[str]:
        """The lines printed on start: comments, then the exports a user pastes."""
        assert self.stack is not None
        functions = ", ".join(f"{f.name} ({f.handler})" for f in self.stack.functions.values())
        lines = [
            f"# crq sandbox: AWS (moto) at {self.exports['AWS_ENDPOINT_URL']}, "
            f"Clean Rooms (engine) at {self.exports['AWS_ENDPOINT_URL_CLEANROOMS']}",
            f"# collaboration: {self.options.collaboration}",
            *self._world_lines(),
            f"# functions: {functions}; track schedule every {self.options.tick_seconds:g} s",
            f"# handler logs: {self.log_path}",
            "# paste these lines into another shell (they change nothing in ~/.aws):",
            *export_lines(self.exports),
            "unset AWS_PROFILE  # a profile would point the AWS CLI and boto3 elsewhere",
            f"# try: aws s3 cp my-spec.yaml s3://{self.exports['CRQ_SPECS_BUCKET']}/specs/",
            f"{READY_MARKER}; Ctrl-C stops it",
        ]
        return lines


def pinned(console: Console) -> Console:
    """A console that keeps writing where `console` writes now.

    A console without a file writes to whatever `sys.stdout` is at the time, and during a
    handler invocation that is the handler log (lambda_runtime.py redirects it).
    """
    return Console(
        file=console.file,
        force_terminal=console.is_terminal,
        color_system=console.color_system,  # type: ignore[arg-type]
        highlight=False,
    )


def _clients(endpoint: str, region: str) -> AwsClients:
    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    return AwsClients.of(client)


def _scheduled_event(scheduler: Any, name: str) -> Any:
    """Each tick, the schedule's input as EventBridge Scheduler delivers it (None: disabled)."""

    def event() -> Any:
        schedule = scheduler.get_schedule(Name=name)
        if schedule.get("State") == "DISABLED":
            return None
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = schedule["Target"].get("Input", "{}")
        # Scheduler's context attributes, substituted in the input text as AWS does.
        for attribute, value in (
            ("<aws.scheduler.scheduled-time>", now),
            ("<aws.scheduler.schedule-arn>", schedule["Arn"]),
            ("<aws.scheduler.execution-id>", str(uuid.uuid4())),
            ("<aws.scheduler.attempt-number>", "1"),
        ):
            text = text.replace(attribute, value)
        return json.loads(text)

    return event


def serve(options: SandboxOptions, console: Console) -> None:
    """Run a sandbox until Ctrl-C or SIGTERM, then stop it cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    sandbox = Sandbox(options, console)
    console = sandbox.console
    sandbox.start()
    for line in sandbox.banner():
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        console.print("# stopping the sandbox...", markup=False, highlight=False)
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.print("# sandbox stopped", markup=False, highlight=False)
