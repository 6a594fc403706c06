"""`crq demo` (and `make demo`): the sandbox, the example specs, how each run ended.

The demo does what a user would: starts `crq sandbox` as a separate process, reads the
`export` lines it prints, subscribes its own SQS queue to the notifications topic, uploads the
specs listed in `examples/specs/demo.toml` to the specs bucket, and waits for one notification
per spec. It shows each notification as it arrives, the first rows of each result file and a
summary, stops the sandbox with Ctrl-C's signal, and fails (DemoFailed) if a spec did not end
as the manifest expects within its time limit.
"""

from __future__ import annotations

import csv
import io
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import yaml
from rich.console import Console, Group
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from crq.spec.apimodel import ROOT_LOCATION
from crq_local.sandbox.consumer import subscribe_queue
from crq_local.sandbox.exports import READY_MARKER, parse_exports
from crq_local.sandbox.notifications import (
    EVENT_STYLES,
    ReceivedNotification,
    compact_line,
    parse_sns_message,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANIFEST = "demo.toml"
SANDBOX_START_SECONDS = 60  # a cold start on a slow machine imports moto, duckdb, pyarrow
SANDBOX_STOP_SECONDS = 20
DEFAULT_SPEC_TIMEOUT_SECONDS = 45
PREVIEW_ROWS = 5
TRACK_TICK_SECONDS = 2


class DemoFailed(Exception):
    """An expected outcome did not arrive in time, or the sandbox misbehaved."""


@dataclass(frozen=True)
class Expectation:
    file: str
    expect: str
    timeout_seconds: float = DEFAULT_SPEC_TIMEOUT_SECONDS
    fire_in_seconds: float | None = None  # scheduled: at() this far ahead of the upload
    note: str = ""  # issue 11: what to notice about this run, shown under its notification

    @property
    def key(self) -> str:
        return f"specs/{self.file}"

    @property
    def wait_seconds(self) -> float:
        return self.timeout_seconds + (self.fire_in_seconds or 0)


@dataclass
class Outcome:
    expectation: Expectation
    uploaded_at: float = 0.0
    notification: ReceivedNotification | None = None
    arrived_at: float | None = None
    schedule_notice: ReceivedNotification | None = None  # SCHEDULE_SET, for scheduled specs

    def waiting(self, now: float) -> bool:
        """Still expecting its notification: none yet, and its time limit not passed."""
        return self.notification is None and now < self.uploaded_at + self.expectation.wait_seconds

    @property
    def ok(self) -> bool:
        return self.notification is not None and self.notification.event == self.expectation.expect


def load_manifest(specs_dir: Path) -> list[Expectation]:
    """The specs to upload, in order, and the event each must end in."""
    path = specs_dir / MANIFEST
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("spec", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DemoFailed(f"{path}: cannot read the demo manifest: {exc}") from exc
    expectations = []
    for entry in entries:
        expectation = Expectation(
            file=str(entry["file"]),
            expect=str(entry["expect"]),
            timeout_seconds=float(entry.get("timeout_seconds", DEFAULT_SPEC_TIMEOUT_SECONDS)),
            fire_in_seconds=float(entry["fire_in_seconds"]) if "fire_in_seconds" in entry else None,
            note=str(entry.get("note", "")),  # issue 11
        )
        if not (specs_dir / expectation.file).is_file():
            raise DemoFailed(f"{path}: {expectation.file} does not exist in {specs_dir}")
        expectations.append(expectation)
    if not expectations:
        raise DemoFailed(f"{path}: no [[spec]] entries")
    return expectations


# ---- the sandbox, as a separate process ------------------------------------------------------


@dataclass
class SandboxProcess:
    """`crq sandbox` in a child process; its output is kept for when something goes wrong."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    tail: list[str] = field(default_factory=list)
    stderr_text: str = ""

    @classmethod
    def start(cls, collaboration: Path, pace: str, log_file: Path) -> SandboxProcess:
        command = [
            sys.executable,
            "-m",
            "crq_local.cli",
            "sandbox",
            "--config",
            str(collaboration),
            "--port",
            "0",  # free ports: a sandbox the user already runs keeps its own
            "--engine-port",
            "0",
            "--tick",
            str(TRACK_TICK_SECONDS),
            "--pace",
            pace,
            "--log-file",
            str(log_file),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        sandbox = cls(process)
        threading.Thread(target=sandbox._read_stdout, daemon=True).start()
        threading.Thread(target=sandbox._read_stderr, daemon=True).start()
        return sandbox

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr_text = self.process.stderr.read()

    def wait_ready(self, timeout: float) -> dict[str, str]:
        """The exports printed before the ready line."""
        deadline = time.monotonic() + timeout
        printed: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DemoFailed(f"the sandbox did not start within {timeout:.0f} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(5)
                raise DemoFailed(
                    f"the sandbox exited ({self.process.returncode}) before it was ready: "
                    + (self.stderr_text.strip() or "\n".join(printed[-5:]))
                )
            printed.append(line)
            if line.startswith(READY_MARKER):
                self.tail = printed
                return parse_exports(printed)

    def drain(self) -> None:
        """Keep the child's output moving (a full pipe would block it); keep the last lines."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.tail = [*self.tail[-50:], line]

    def stop(self) -> int:
        """Ctrl-C's signal, then wait for a clean exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(SANDBOX_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.drain()
        return self.process.returncode


# ---- the demo --------------------------------------------------------------------------------


def _clients(exports: dict[str, str]) -> tuple[Any, Any, Any]:
    session = boto3.session.Session(
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        region_name=exports["AWS_DEFAULT_REGION"],
    )
    endpoint = exports["AWS_ENDPOINT_URL"]
    return (
        session.client("s3", endpoint_url=endpoint),
        session.client("sns", endpoint_url=endpoint),
        session.client("sqs", endpoint_url=endpoint),
    )


def run_demo(
    console: Console,
    *,
    pace: str = "demo",
    examples: Path = EXAMPLES,
) -> list[Outcome]:
    """Run the demo; returns the outcomes, or raises DemoFailed saying what went wrong."""
    specs_dir = examples / "specs"
    expectations = load_manifest(specs_dir)
    started = time.monotonic()
    console.rule("[bold]crq demo")
    console.print(
        "Starting the sandbox: AWS (moto), the local Clean Rooms engine and crq's handlers, "
        "on loopback."
    )
    log_file = Path(tempfile.mkdtemp(prefix="crq-demo-")) / "handlers.log"
    sandbox = SandboxProcess.start(examples / "collaboration.yaml", pace, log_file)
    outcomes: list[Outcome] = []
    try:
        exports = sandbox.wait_ready(SANDBOX_START_SECONDS)
        console.print(
            f"Sandbox ready in {time.monotonic() - started:.1f} s; handler logs in {log_file}"
        )
        outcomes = _upload_and_wait(console, exports, specs_dir, expectations, sandbox)
    finally:
        code = sandbox.stop()
    _summary(console, outcomes)
    console.print(
        f"Sandbox stopped (exit code {code}); the demo took {time.monotonic() - started:.1f} s."
    )
    problems = [
        f"{o.expectation.file}: expected {o.expectation.expect}, got "
        + (
            o.notification.event
            if o.notification
            else f"no notification within {o.expectation.timeout_seconds:.0f} s"
        )
        for o in outcomes
        if not o.ok
    ]
    if code != 0:
        problems.append(f"the sandbox exited with code {code}: {sandbox.stderr_text.strip()}")
    if problems:
        raise DemoFailed("; ".join(problems))
    console.print("[bold green]Every spec ended as expected.[/]")
    return outcomes


def _upload_and_wait(
    console: Console,
    exports: dict[str, str],
    specs_dir: Path,
    expectations: list[Expectation],
    sandbox: SandboxProcess,
) -> list[Outcome]:
    s3, sns, sqs = _clients(exports)
    # A subscriber of our own, as any consumer of crq's notifications would have.
    queue_url = subscribe_queue(sns, sqs, exports["CRQ_TOPIC_ARN"], "crq-demo-subscriber")
    bucket = exports["CRQ_SPECS_BUCKET"]
    outcomes = {e.key: Outcome(e) for e in expectations}

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        tasks = {}
        for expectation in expectations:
            body = (specs_dir / expectation.file).read_bytes()
            note = f"  (expects {expectation.expect})"
            if expectation.fire_in_seconds is not None:
                body, at = scheduled_soon(body, expectation.fire_in_seconds)
                note = f"  (schedule: {at}; expects {expectation.expect} when it fires)"
            s3.put_object(Bucket=bucket, Key=expectation.key, Body=body)
            outcomes[expectation.key].uploaded_at = time.monotonic()
            console.print(
                Text("uploaded ", style="dim")
                + Text(f"s3://{bucket}/{expectation.key}")
                + Text(note, style="dim")
            )
            tasks[expectation.key] = progress.add_task(
                f"{expectation.file}: waiting for {expectation.expect}", total=1
            )
        while any(o.waiting(time.monotonic()) for o in outcomes.values()):
            sandbox.drain()
            if sandbox.process.poll() is not None:
                raise DemoFailed(
                    f"the sandbox stopped unexpectedly ({sandbox.process.returncode}): "
                    + sandbox.stderr_text.strip()
                )
            for message in sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                notification = parse_sns_message(message["Body"])
                outcome = outcomes.get(notification.spec_key)
                console.print(compact_line(notification), soft_wrap=True)
                if outcome is not None and notification.event.startswith("SCHEDULE_"):
                    outcome.schedule_notice = notification  # set; the run comes when it fires
                    continue
                if outcome is None or outcome.notification is not None:
                    continue  # not one of ours, or a duplicate delivery
                outcome.notification = notification
                outcome.arrived_at = time.monotonic()
                _details(console, s3, notification)
                if outcome.expectation.note:  # issue 11: e.g. the groups a rule left out
                    console.print(Text(f"    {outcome.expectation.note}", style="cyan"))
                progress.update(
                    tasks[notification.spec_key],
                    completed=1,
                    description=f"{outcome.expectation.file}: {notification.event}",
                )
    return list(outcomes.values())


def scheduled_soon(body: bytes, seconds: float) -> tuple[bytes, str]:
    """The spec with `schedule:` set to at() `seconds` from now, on the spec's zone's clock."""
    from zoneinfo import ZoneInfo

    document = yaml.safe_load(body)
    zone = ZoneInfo(document.get("timezone") or "UTC")
    when = (datetime.now(UTC) + timedelta(seconds=seconds)).astimezone(zone)
    at = f"at({when:%Y-%m-%dT%H:%M:%S})"
    text, count = re.subn(r"(?m)^schedule:.*$", f"schedule: {at}", body.decode("utf-8"))
    if count != 1:
        raise DemoFailed("a spec with fire_in_seconds needs one `schedule:` line")
    return text.encode("utf-8"), f"{at} {zone.key}"


def _details(console: Console, s3: Any, notification: ReceivedNotification) -> None:
    """What a subscriber would look at next: the errors, or the first rows of the result."""
    for error in notification.errors:
        field = str(error.get("field") or "")
        console.print(
            Text("    ")
            + Text(f"{field or ROOT_LOCATION}: ", style="magenta")
            + Text(str(error.get("message", ""))),
            soft_wrap=True,
        )
    if notification.error:
        console.print(
            Text(f"    {notification.error.get('message', '')}", style="red"), soft_wrap=True
        )
    if notification.objects:
        uri = str(notification.objects[0]["uri"])
        try:
            console.print(preview(s3, uri))
        except Exception as exc:  # a preview is a courtesy: say why it is missing, carry on
            console.print(Text(f"    (no preview of {uri}: {exc})", style="yellow"))


def preview(s3: Any, uri: str, rows: int = PREVIEW_ROWS) -> Table:
    """The first rows of a CSV or Parquet result object, as a table."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if key.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(body))
        header = list(table.column_names)
        total = table.num_rows
        records = [[_cell(v) for v in row.values()] for row in table.slice(0, rows).to_pylist()]
    else:
        reader = list(csv.reader(io.StringIO(body.decode("utf-8"))))
        header, data = (reader[0], reader[1:]) if reader else ([], [])
        total = len(data)
        records = data[:rows]
    shown = Table(
        title=f"{key.rsplit('/', 1)[-1]}: first {min(rows, total)} of {total} rows",
        title_style="dim",
        title_justify="left",
        box=None,
        padding=(0, 2),
    )
    for name in header:
        shown.add_column(name, overflow="ellipsis", max_width=28)
    for record in records:
        shown.add_row(*record)
    return shown


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _summary(console: Console, outcomes: list[Outcome]) -> None:
    if not outcomes:
        return
    table = Table(title="crq demo: how each run ended", title_justify="left")
    table.add_column("spec", no_wrap=True)
    table.add_column("event", no_wrap=True, min_width=15)
    table.add_column("query", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("trigger", no_wrap=True)
    table.add_column("result", no_wrap=True, overflow="ellipsis", max_width=32)
    for outcome in outcomes:
        notification = outcome.notification
        expected = outcome.expectation.expect
        if notification is None:
            table.add_row(
                outcome.expectation.file,
                Text(f"nothing (expected {expected})", style="red"),
                "",
                "",
                "",
                "",
            )
            continue
        event = Text(notification.event, style=EVENT_STYLES.get(notification.event, ""))
        if not outcome.ok:
            event.append(f" (expected {expected})", style="red")
        duration_ms = notification.duration_ms
        table.add_row(
            notification.spec_name,
            event,
            (notification.query_id or "")[:8],  # the full id is in the line printed above
            f"{duration_ms / 1000:.1f} s" if duration_ms is not None else "",
            _trigger(outcome),
            _result(notification),
        )
    console.print(Group(Text(""), table))


def _trigger(outcome: Outcome) -> str:
    """`upload`, or `at 15:04:05 CET`: when the schedule fired, on the spec's clock."""
    assert outcome.notification is not None
    trigger = outcome.notification.body.get("trigger", {})
    if trigger.get("type") != "schedule":
        return "upload"
    from zoneinfo import ZoneInfo

    notice = outcome.schedule_notice
    zone_name = notice.body.get("schedule", {}).get("timezone") if notice else None
    fired = datetime.fromisoformat(str(trigger.get("time")).replace("Z", "+00:00"))
    local = fired.astimezone(ZoneInfo(zone_name or "UTC"))
    return f"at {local:%H:%M:%S %Z}"


def _result(notification: ReceivedNotification) -> str:
    """The summary's short form: how many files and the last part of the first one's key."""
    objects = notification.objects
    if objects:
        name = str(objects[0]["uri"]).rsplit("/", 1)[-1]
        return f"{len(objects)} file{'s' if len(objects) != 1 else ''} ({name})"
    if notification.errors:
        count = len(notification.errors)
        return f"{count} field error{'s' if count != 1 else ''}"
    return notification.outcome()
