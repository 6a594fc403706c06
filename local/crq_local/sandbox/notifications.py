"""Reading crq's notifications the way a subscriber does: an SNS envelope delivered to SQS.

Shared by the sandbox's downstream consumer, `crq demo` and the end-to-end tests, so all three
read the message body (docs/notifications.md) the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from crq.spec.apimodel import located

EVENT_STYLES = {
    "QUERY_SUCCEEDED": "bold green",
    "QUERY_FAILED": "bold red",
    "QUERY_TIMED_OUT": "bold red",
    "QUERY_CANCELLED": "bold yellow",
    "SPEC_REJECTED": "bold magenta",
    "START_FAILED": "bold red",
}


@dataclass(frozen=True)
class ReceivedNotification:
    body: dict[str, Any]
    subject: str | None
    attributes: dict[str, str]

    @property
    def event(self) -> str:
        return str(self.body.get("event", "?"))

    @property
    def spec_name(self) -> str:
        return str(self.body.get("spec", {}).get("name", "?"))

    @property
    def spec_source(self) -> str:
        return str(self.body.get("spec", {}).get("source", ""))

    @property
    def spec_key(self) -> str:
        """The object key of the spec, from its s3:// source."""
        source = self.spec_source
        if source.startswith("s3://"):
            return source[len("s3://") :].partition("/")[2]
        return source

    @property
    def query_id(self) -> str | None:
        value = self.body.get("query", {}).get("id")
        return str(value) if value else None

    @property
    def status(self) -> str | None:
        value = self.body.get("query", {}).get("status")
        return str(value) if value else None

    @property
    def objects(self) -> list[dict[str, Any]]:
        return list(self.body.get("result", {}).get("objects", []))

    @property
    def error(self) -> dict[str, Any] | None:
        error = self.body.get("error")
        return dict(error) if error else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors", []))

    @property
    def duration_ms(self) -> int | None:
        value = self.body.get("statistics", {}).get("totalDurationInMillis")
        return int(value) if value is not None else None

    @property
    def units(self) -> float | None:
        stats = self.body.get("statistics", {})
        value = stats.get("billedResourceUtilization", {}).get("units")
        return float(value) if value is not None else None

    def outcome(self) -> str:
        """One short phrase: where the results are, or what went wrong (or the schedule)."""
        schedule = self.body.get("schedule")
        if isinstance(schedule, dict):  # SCHEDULE_SET / SCHEDULE_REMOVED
            fires = schedule.get("nextFireTimes") or []
            if not fires:
                return str(self.body.get("reason", ""))
            where = f"{schedule.get('expression')} {schedule.get('timezone')}"
            return f"{where}, next {fires[0]}"
        if self.objects:
            count = len(self.objects)
            return f"{count} result file{'s' if count != 1 else ''}: {self.objects[0]['uri']}"
        if self.error:
            return f"{self.error.get('code', 'ERROR')}: {self.error.get('message', '')}"
        if self.errors:
            first = self.errors[0]
            more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            return located(str(first.get("field") or ""), str(first.get("message", ""))) + more
        return self.status or ""


def parse_sns_message(body: str) -> ReceivedNotification:
    """Parse an SQS message body holding an SNS notification (raw delivery off or on)."""
    envelope = json.loads(body)
    if isinstance(envelope, dict) and envelope.get("Type") == "Notification":
        attributes = {
            name: str(value.get("Value"))
            for name, value in envelope.get("MessageAttributes", {}).items()
        }
        return ReceivedNotification(
            body=json.loads(envelope["Message"]),
            subject=envelope.get("Subject"),
            attributes=attributes,
        )
    return ReceivedNotification(body=envelope, subject=None, attributes={})


def compact_line(notification: ReceivedNotification) -> Text:
    """`QUERY_SUCCEEDED  weekly-overlap  query 1f2e...  SUCCESS  3 result files: s3://...`"""
    line = Text()
    line.append(f"{notification.event:<16}", style=EVENT_STYLES.get(notification.event, "bold"))
    line.append(f" {notification.spec_name}", style="cyan")
    if notification.query_id:
        line.append(f"  query {notification.query_id}", style="dim")
    if notification.status:
        line.append(f"  {notification.status}")
    outcome = notification.outcome()
    if outcome and outcome != notification.status:
        line.append(f"  {outcome}", style="dim")
    return line
