"""What the sandbox prints while it runs: one compact line per event handled or notification."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from crq_local.sandbox.lambda_runtime import Invocation
from crq_local.sandbox.router import Delivery


def describe_event(event: Any) -> str:
    """`Object Created specs/x.yaml`, `Protected Query Succeeded 1f2e...`, or the event's source."""
    if not isinstance(event, dict):
        return type(event).__name__
    raw_detail = event.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    if event.get("source") == "aws.s3":
        key = detail.get("object", {}).get("key", "?")
        return f"{event.get('detail-type', 'S3 event')} {key}"
    if event.get("source") == "aws.cleanrooms":
        return (
            f"{event.get('detail-type', 'Clean Rooms event')} {detail.get('protectedQueryId', '')}"
        )
    if "specKey" in event:
        return f"schedule {event['specKey']}"
    return str(event.get("detail-type") or event.get("source") or "event")


def delivery_line(delivery: Delivery, function_name: str) -> Text:
    line = Text("  ↳ ", style="dim")
    line.append(f"{function_name:<22}", style="dim")
    line.append(describe_event(delivery.event), style="dim")
    invocation = delivery.invocation
    if invocation.ok:
        line.append(f"  ok {invocation.duration_ms:.0f} ms", style="dim green")
        return line
    line.append(f"  attempt {delivery.attempt}/{delivery.route.max_attempts} failed: ", style="red")
    line.append(_first_line(invocation.error), style="red")
    if delivery.gave_up:
        where = "the dead-letter queue" if delivery.route.on_failure_queue_url else "nowhere"
        line.append(f"; gave up, event sent to {where}", style="bold red")
    return line


def tick_failure_line(invocation: Invocation, function_name: str) -> Text:
    line = Text("  ↳ ", style="dim")
    line.append(f"{function_name:<22}", style="dim")
    line.append(f"schedule tick failed: {_first_line(invocation.error)}", style="red")
    return line


def _first_line(error: str | None) -> str:
    """Errors can span lines (pydantic's do): the first one here, the rest in the log."""
    lines = (error or "").strip().splitlines() or [""]
    return lines[0] + (" (more in the handler log)" if len(lines) > 1 else "")
