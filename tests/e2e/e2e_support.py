"""Driving `crq` as a user does: the console script in its own process, its printed exports,
boto3 clients for its endpoints, an SQS queue of one's own subscribed to $CRQ_TOPIC_ARN."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from crq_local.sandbox import READY_MARKER, parse_exports
from crq_local.sandbox.notifications import ReceivedNotification, parse_sns_message

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = ROOT / "examples" / "specs"
CRQ = str(Path(sys.executable).with_name("crq"))  # the console script pip installed
START_SECONDS = 90  # generous: `make test` runs other suites on the same two cores
NOTIFY_SECONDS = 60


def crq_env(exports: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user's shell, plus the pasted export lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRQ_"))}
    return {**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(exports or {})}


@dataclass
class SandboxProcess:
    process: subprocess.Popen[str]
    exports: dict[str, str] = field(default_factory=dict)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, *args: str, cwd: Path) -> SandboxProcess:
        process = subprocess.Popen(
            [CRQ, "sandbox", "--port", "0", "--engine-port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=crq_env(),
        )
        sandbox = cls(process)
        threading.Thread(target=sandbox._read, args=(process.stdout, True), daemon=True).start()
        threading.Thread(target=sandbox._read, args=(process.stderr, False), daemon=True).start()
        sandbox._wait_ready()
        return sandbox

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for line in stream:
            (self.stdout if is_stdout else self.stderr).append(line.rstrip("\n"))
            if is_stdout:
                self._lines.put(line)
        if is_stdout:
            self._lines.put(None)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith(READY_MARKER):
                self.exports = parse_exports(self.stdout)
                return
        self.process.kill()
        raise AssertionError(
            "the sandbox did not get ready:\n" + "\n".join(self.stdout + self.stderr)
        )

    def client(self, service: str) -> Any:
        endpoint = self.exports[
            "AWS_ENDPOINT_URL_CLEANROOMS" if service == "cleanrooms" else "AWS_ENDPOINT_URL"
        ]
        session = boto3.session.Session(
            aws_access_key_id=self.exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.exports["AWS_SECRET_ACCESS_KEY"],
            region_name=self.exports["AWS_DEFAULT_REGION"],
        )
        return session.client(service, endpoint_url=endpoint)

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, and the exit code once it has stopped."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Subscriber:
    """An SQS queue of the test's own, subscribed to the notifications topic."""

    sqs: Any
    queue_url: str
    received: list[ReceivedNotification] = field(default_factory=list)

    def wait_for(
        self, want: Callable[[ReceivedNotification], bool], count: int = 1
    ) -> list[ReceivedNotification]:
        deadline = time.monotonic() + NOTIFY_SECONDS
        while time.monotonic() < deadline:
            found = [n for n in self.received if want(n)]
            if len(found) >= count:
                return found
            for message in self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                self.received.append(parse_sns_message(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        events = [(n.spec_key, n.event) for n in self.received]
        raise AssertionError(f"expected {count} notifications; received {events}")

    def for_keys(self, *keys: str) -> dict[str, ReceivedNotification]:
        found = self.wait_for(lambda n: n.spec_key in keys, count=len(keys))
        return {n.spec_key: n for n in found}
