"""The notification as readable text, for e-mail subscribers (SNS sends each protocol its own
message: e-mail gets this, SQS, Lambda and HTTP(S) get the JSON body)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crq.notification import Notification

MAX_LISTED_FILES = 20  # the JSON lists up to 500; a person reads the first few


def notification_text(n: Notification) -> str:
    lines = [f"crq: {n.spec.name} {n.event.value}", ""]
    lines.append(
        f"Spec:      {n.spec.source}" + (f" (version {n.spec.version})" if n.spec.version else "")
    )
    lines.append(f"Trigger:   {n.trigger.type} at {n.trigger.time.isoformat()}")
    if n.query is not None:
        q = n.query
        if q.id:
            lines.append(f"Query:     {q.id} ({q.status or 'no status'})")
        lines.append(f"Attempt:   {q.attempt} of {q.max_attempts}")
        if q.membership_id:
            lines.append(f"Membership: {q.membership_id}")
        if q.analysis_template_arn:
            lines.append(f"Template:  {q.analysis_template_arn}")
        if q.result_prefix:
            lines.append(f"Results to: {q.result_prefix}")
    if n.error is not None:
        reason = f" ({n.error.reason})" if n.error.reason else ""
        lines += ["", f"Error: {n.error.code}{reason}", f"  {n.error.message}"]
        lines.append("  Clean Rooms may succeed if tried again." if n.error.retryable else "")
    if n.reason:
        lines += ["", f"Cancelled: {n.reason}"]
    if n.errors:
        lines += ["", "Problems in the spec:"]
        lines += [f"  - {e.field or '(file)'}: {e.message}" for e in n.errors]
    if n.result is not None:
        lines.append("")
        if n.result.objects_not_listed:
            lines.append("Result files: could not be listed (the stack may not read the bucket)")
        elif n.result.objects is not None:
            lines.append(f"Result files ({len(n.result.objects)}):")
            lines += [f"  {o.uri} ({o.size} bytes)" for o in n.result.objects[:MAX_LISTED_FILES]]
            if len(n.result.objects) > MAX_LISTED_FILES or n.result.objects_truncated:
                lines.append("  ... more in the JSON message and the bucket")
        else:
            lines.append("Results: delivered to the receiving member(s)")
    if n.cost is not None:
        lines += ["", f"Cost: {n.cost.total_billed_units:g} CRPU hours"]
        lines += [
            f"  {a.query_id}: {a.status}, "
            + (f"{a.billed_units:g} CRPU hours" if a.billed_units is not None else "not reported")
            for a in n.cost.attempts
        ]
    lines += ["", f"Run: {n.run_id}", f"Notification: {n.notification_id}", ""]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1]))
