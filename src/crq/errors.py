"""The error hierarchy of crq.

Adapters turn botocore's `ClientError` into these (`raise ... from exc`), so the use cases decide
retry-or-give-up on domain terms in one place each:

- `StartDeferred`: Clean Rooms did not start the query, and asking again later will help
  (quota, throttling, IAM propagation). The run stays QUEUED; the attempt is not consumed.
- `StartRefused`: Clean Rooms will not start this request as it stands (validation, access, not
  found, conflict). The run ends START_FAILED and is notified.
- Anything else from a start call (5xx, network) is *not* wrapped: it propagates, the run stays
  STARTING and is reconciled, and Lambda's retry/dead-letter queue applies to the event.

Spec validation errors are the spec module's `SpecInvalid`; this module only holds what the
pipeline itself raises.
"""

from __future__ import annotations


class CrqError(Exception):
    """Base of every error crq raises on purpose."""


class ConfigError(CrqError):
    """The function's environment is incomplete or wrong; raised at cold start."""


class StaleRun(CrqError):
    """A conditional ledger write lost a race: another invocation changed the run first."""

    def __init__(self, run_id: str, revision: int) -> None:
        super().__init__(f"run {run_id} changed since revision {revision}")
        self.run_id = run_id
        self.revision = revision


class LedgerBusy(CrqError):
    """The ledger left part of a batch read undone (throttled) after its retries; nothing was
    changed, and the invocation fails so that it is tried again."""


class NameClaimed(CrqError):
    """A run created with its spec's name claim was not created: another spec key holds the name
    (crq.spec.names decides whether that key still uses it)."""

    def __init__(self, name: str, owner: str) -> None:
        super().__init__(f"spec name {name!r} is held by {owner}")
        self.name = name
        self.owner = owner


class ScheduleRecordFound(CrqError):
    """A run created on the condition that its spec key has no schedule to sync was not
    created: the key's spec-state record holds a schedule, or an event not yet applied
    (crq.uploads then syncs the schedule first, and starts again)."""

    def __init__(self, record_id: str) -> None:
        super().__init__(f"spec-state record {record_id} has a schedule to sync")
        self.record_id = record_id


class SpecUnreadable(CrqError):
    """The spec object cannot be read (missing, deleted version, access denied, too large)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class StartDeferred(CrqError):
    """Clean Rooms did not start the query, and trying again later will help."""

    # The codes the start use case tells apart (each waits differently).
    QUOTA = "ServiceQuotaExceededException"
    THROTTLED = "ThrottlingException"
    IAM_DELAY = "IAM_SYNCHRONIZATION_DELAY"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StartRefused(CrqError):
    """Clean Rooms refused the request for a reason that will not change by waiting.

    `code` is the exception name (a stable machine code), `reason` Clean Rooms' reason when it
    gives one (e.g. FIELD_VALIDATION_FAILED)."""

    def __init__(self, code: str, message: str, reason: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.reason = reason


class QueryNotFound(CrqError):
    """Clean Rooms no longer knows a protected query crq recorded."""

    def __init__(self, membership_id: str, query_id: str, message: str = "") -> None:
        super().__init__(f"protected query {query_id} not found in membership {membership_id}")
        self.membership_id = membership_id
        self.query_id = query_id
        self.message = message


class QueryAlreadyEnded(CrqError):
    """A cancel arrived after the query had ended (Clean Rooms' ConflictException)."""

    def __init__(self, query_id: str, message: str = "") -> None:
        super().__init__(f"protected query {query_id} already ended: {message}")
        self.query_id = query_id
        self.message = message


class ResultsUnavailable(CrqError):
    """The result location cannot be listed (no permission, no such bucket); the notification
    goes out without `result.objects` rather than never."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


class CollaborationResourceNotFound(CrqError):
    """Clean Rooms says a membership or analysis template that preflight read does not exist."""

    def __init__(self, what: str, message: str = "") -> None:
        super().__init__(f"{what} not found: {message}")
        self.what = what
        self.message = message


class CollaborationReadFailed(CrqError):
    """A read preflight makes could not be made (throttled, access denied, server error); the
    checks that need it are skipped, never failed."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PublishFailed(CrqError):
    """SNS did not accept a notification; the run keeps its claim and is re-published later."""
