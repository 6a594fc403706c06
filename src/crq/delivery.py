"""Delivery of run notifications, exactly once per ended run: claim, publish, mark SENT.

The claim protocol: claim (conditional write: PENDING, or CLAIMED with an expired lease ->
CLAIMED with a new lease; a run is ended and claimed in the same write, `claimed_end`), publish,
then SENT (which also takes the run out of the InFlight index and sets its TTL). A publish that
fails leaves the claim; a later track re-publishes once the lease has passed. The body itself is
`crq.notification`'s.
"""

from __future__ import annotations

from datetime import datetime

from aws_lambda_powertools import Logger

from crq.errors import PublishFailed, StaleRun
from crq.ledger import NotifyState, Outcome, Run, RunState, expiry
from crq.ports import Collaborators

# The notification contract (crq.notification: its models, the text for e-mail) is imported
# where a notification is built, not at import: a track tick with nothing ending, the track
# function's usual cold start, should not pay for it.

logger = Logger(child=True)


def deliver(run: Run, deps: Collaborators) -> Run:
    """Publish an ended run's notification unless it is sent or claimed by someone else.

    Returns the run as stored afterwards. A lost claim race returns the run unchanged; a publish
    failure is logged and leaves the claim for a later track (it never raises for it).
    """
    now = deps.clock()
    if not run.needs_notification(now):
        return run
    try:
        claimed = deps.ledger.save(
            run.evolve(
                now,
                notify_state=NotifyState.CLAIMED,
                notify_lease_until=now + deps.settings.notify_lease,
            )
        )
    except StaleRun:
        logger.info("notification claimed elsewhere", extra={"runId": run.run_id})
        return run
    return publish_claimed(claimed, deps)


def publish_claimed(claimed: Run, deps: Collaborators) -> Run:
    """Publish the notification of a run this invocation holds the claim of, then mark it SENT
    (which takes it out of the InFlight index and sets its TTL)."""
    from crq.notification import attributes, build_notification, subject
    from crq.notification_text import notification_text

    notification = build_notification(claimed)
    try:
        message_id = deps.publisher.publish(
            subject(claimed),
            notification.to_json(),
            attributes(claimed),
            text=notification_text(notification),  # e-mail subscribers get readable text
        )
    except PublishFailed:
        logger.exception(
            "notification not published; a later track retries it",
            extra={"runId": claimed.run_id, "notificationId": notification.notification_id},
        )
        return claimed
    deps.metrics.notification_published()
    logger.info(
        "notification published",
        extra={
            "runId": claimed.run_id,
            "notificationId": notification.notification_id,
            "event": notification.event.value,
            "messageId": message_id,
        },
    )
    done = deps.clock()
    try:
        return deps.ledger.save(
            claimed.evolve(
                done,
                notify_state=NotifyState.SENT,
                notify_lease_until=None,
                notified_at=done,
                expires_at=expiry(done, deps.settings.run_retention_days),
            )
        )
    except StaleRun:
        # Only a claim whose lease expired mid-publish gets here; the other claimant publishes
        # the same notificationId again, which consumers drop.
        logger.warning(
            "notification sent but marked by another claimant", extra={"runId": claimed.run_id}
        )
        return claimed


def claimed_end(run: Run, outcome: Outcome, deps: Collaborators, now: datetime) -> Run:
    """The run ended with `outcome` and its notification claimed by the writer (with a lease):
    ending and claiming are one conditional write, so of two invocations ending a run, the one
    whose write lands publishes, and the other does nothing."""
    return run.evolve(
        now,
        state=RunState.ENDED,
        outcome=outcome,
        query_status=outcome.query_status or run.query_status,
        notify_state=NotifyState.CLAIMED,
        notify_lease_until=now + deps.settings.notify_lease,
    )
