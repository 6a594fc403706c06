"""Preflight: check a rendered StartProtectedQuery request against the collaboration and the
stack, so what Clean Rooms would refuse (or what the stack could not follow up) is a
SPEC_REJECTED field error before anything is billed.

What is checked (each failure names the request field):
- the membership is one of the stack's MembershipIds, is ACTIVE and has CAN_QUERY;
- the analysis template exists (GetAnalysisTemplate for the membership's own template,
  GetCollaborationAnalysisTemplate for another member's, which must also be one of the stack's
  AnalysisTemplateArns), is an SQL template, gets every parameter without a default, no unknown
  parameter, and each value parses as the parameter's type;
- the compute asked for is within the stack's per-query limits (the cost guard);
- an S3 result location is one of the stack's ResultBucketNames (so its files can be listed)
  and the membership may receive results; a member location names a member that can.

Preflight never makes a valid spec fail: a read that cannot run (throttled, access denied, a
server error) skips the checks that need it, with a log line saying so, and the start goes on.
Reads go through a per-container TTL cache, so a burst of specs costs a few calls, not one per
spec per check.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger

from crq.errors import CollaborationReadFailed, CollaborationResourceNotFound
from crq.ledger import FieldProblem
from crq.settings import Settings

logger = Logger(child=True)

T = TypeVar("T")

OUTPUT = "resultConfiguration.outputConfiguration"
TEMPLATE_FIELD = "sqlParameters.analysisTemplateArn"
PARAMETERS_FIELD = "sqlParameters.parameters"
# arn:aws:cleanrooms:<region>:<account>:membership/<membership id>/analysistemplate/<id>
# (as loose as the model's AnalysisTemplateArn pattern, which the offline checks enforce)
_TEMPLATE_ARN = re.compile(
    r"^arn:aws[a-z-]*:cleanrooms:[\w-]+:(?P<account>\d{12}):membership/"
    r"(?P<membership>[\w-]+)/analysistemplate/(?P<template>[\w-]+)$"
)
_MEMBERSHIP_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:cleanrooms:[a-z0-9-]+:(\d{12}):membership/")
DEFAULT_CACHE_TTL = timedelta(minutes=5)


# ---- what preflight reads, as the domain sees it -------------------------------------------


@dataclass(frozen=True)
class MembershipInfo:
    """GetMembership, the parts preflight uses."""

    id: str
    arn: str
    collaboration_id: str
    status: str  # MembershipStatus: ACTIVE | REMOVED | COLLABORATION_DELETED
    abilities: frozenset[str]
    has_default_result_configuration: bool = False
    default_result_bucket: str | None = None

    @property
    def account_id(self) -> str | None:
        found = _MEMBERSHIP_ARN_ACCOUNT.match(self.arn)
        return found.group(1) if found else None


@dataclass(frozen=True)
class TemplateParameter:
    name: str
    type: str  # ParameterType
    has_default: bool


@dataclass(frozen=True)
class TemplateInfo:
    """GetAnalysisTemplate / GetCollaborationAnalysisTemplate, the parts preflight uses."""

    arn: str
    format: str  # AnalysisFormat: SQL | PYSPARK_1_0 | ...
    parameters: tuple[TemplateParameter, ...]


@dataclass(frozen=True)
class MemberInfo:
    """A MemberSummary from ListMembers."""

    account_id: str
    status: str  # MemberStatus: INVITED | ACTIVE | LEFT | REMOVED
    abilities: frozenset[str]


class CollaborationReader(Protocol):
    """The Clean Rooms reads preflight makes (`crq.adapters.cleanrooms.CleanRoomsGateway`).

    Each raises CollaborationResourceNotFound when Clean Rooms says the thing does not exist,
    and CollaborationReadFailed when the read could not be made (throttled, access denied,
    server error): preflight then skips what depends on it."""

    def get_membership(self, membership_id: str) -> MembershipInfo: ...

    def get_analysis_template(self, membership_id: str, template_id: str) -> TemplateInfo: ...

    def get_collaboration_analysis_template(
        self, collaboration_id: str, template_arn: str
    ) -> TemplateInfo: ...

    def list_members(self, collaboration_id: str) -> list[MemberInfo]: ...


class CachedReader:
    """A CollaborationReader that remembers answers for `ttl` (one per container).

    Only answers are cached: a not-found or a failed read is asked again next time, so a
    template created a minute ago is not refused for five more. Thread-safe. `calls` counts
    the reads that reached Clean Rooms (`make bench` reports it per started query).
    """

    def __init__(
        self,
        reader: CollaborationReader,
        clock: Callable[[], datetime],
        ttl: timedelta = DEFAULT_CACHE_TTL,
    ) -> None:
        self._reader = reader
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[datetime, Any]] = {}
        self.calls = 0  # reads that reached Clean Rooms
        self.lookups = 0  # reads asked for (what an uncached preflight would have made)

    def _cached(self, key: Hashable, read: Callable[[], T]) -> T:
        now = self._clock()
        with self._lock:
            self.lookups += 1
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                value: T = entry[1]
                return value
            self.calls += 1
        value = read()
        with self._lock:
            self._entries[key] = (now + self._ttl, value)
        return value

    def get_membership(self, membership_id: str) -> MembershipInfo:
        return self._cached(
            ("membership", membership_id), lambda: self._reader.get_membership(membership_id)
        )

    def get_analysis_template(self, membership_id: str, template_id: str) -> TemplateInfo:
        return self._cached(
            ("template", membership_id, template_id),
            lambda: self._reader.get_analysis_template(membership_id, template_id),
        )

    def get_collaboration_analysis_template(
        self, collaboration_id: str, template_arn: str
    ) -> TemplateInfo:
        return self._cached(
            ("collaboration-template", collaboration_id, template_arn),
            lambda: self._reader.get_collaboration_analysis_template(
                collaboration_id, template_arn
            ),
        )

    def list_members(self, collaboration_id: str) -> list[MemberInfo]:
        return self._cached(
            ("members", collaboration_id), lambda: self._reader.list_members(collaboration_id)
        )


# ---- the checks ----------------------------------------------------------------------------


@dataclass
class _Check:
    request: Mapping[str, Any]
    settings: Settings
    reader: CollaborationReader
    problems: list[FieldProblem]
    skipped: list[str]

    def refuse(self, field: str, message: str) -> None:
        self.problems.append(FieldProblem(field=field, message=message))

    def read(self, what: str, call: Callable[[], T]) -> T | None:
        """The read's answer; None when it could not be made (logged, checks skipped)."""
        try:
            return call()
        except CollaborationReadFailed as exc:
            self.skipped.append(what)
            logger.warning(
                "preflight check skipped: a Clean Rooms read failed; starting anyway",
                extra={"check": what, "errorCode": exc.code},
            )
            return None


@dataclass(frozen=True)
class PreflightReport:
    problems: list[FieldProblem]
    skipped: list[str]  # the reads that could not be made (their checks did not run)


def check_request(
    request: Mapping[str, Any], settings: Settings, reader: CollaborationReader
) -> PreflightReport:
    """Every problem found with a rendered request, and the reads that could not be made.

    Raises nothing for a read that fails: those checks are skipped and logged."""
    check = _Check(request, settings, reader, [], [])
    _check_compute(check)
    membership = _check_membership(check)
    _check_template(check, membership)
    _check_output(check, membership)
    if check.skipped:
        logger.info("preflight partly skipped", extra={"skipped": check.skipped})
    return PreflightReport(check.problems, check.skipped)


def preflight(
    request: Mapping[str, Any], settings: Settings, reader: CollaborationReader
) -> list[FieldProblem]:
    """Every problem found with a rendered request (empty: start it)."""
    return check_request(request, settings, reader).problems


def _check_membership(check: _Check) -> MembershipInfo | None:
    membership_id = str(check.request.get("membershipIdentifier", ""))
    allowed = check.settings.membership_ids
    if allowed and membership_id not in allowed:
        check.refuse(
            "membershipIdentifier",
            f"is not one of the stack's MembershipIds ({', '.join(allowed)}): the stack may not "
            "run queries in it",
        )
        return None  # not ours to read (the functions have no permission on it)
    try:
        membership = check.read("GetMembership", lambda: check.reader.get_membership(membership_id))
    except CollaborationResourceNotFound:
        check.refuse("membershipIdentifier", "no such membership (Clean Rooms does not know it)")
        return None
    if membership is None:
        return None
    if membership.status != "ACTIVE":
        check.refuse(
            "membershipIdentifier",
            f"the membership is {membership.status}, not ACTIVE: it can no longer run queries",
        )
    elif "CAN_QUERY" not in membership.abilities:
        check.refuse(
            "membershipIdentifier",
            "the membership may not run queries (it lacks the CAN_QUERY ability; it has "
            f"{_listed(membership.abilities)})",
        )
    return membership


def _check_template(check: _Check, membership: MembershipInfo | None) -> None:
    sql = check.request.get("sqlParameters") or {}
    arn = sql.get("analysisTemplateArn")
    if not isinstance(arn, str):
        return
    parsed = _TEMPLATE_ARN.match(arn)
    if parsed is None:
        return  # the offline checks hold the ARN's format; nothing here to resolve it by
    if membership is None:
        return  # refused above, or unreadable: nothing to resolve the template against
    own = parsed.group("membership") == membership.id
    if not own and arn not in check.settings.analysis_template_arns:
        check.refuse(
            TEMPLATE_FIELD,
            "is another member's analysis template, and not one of the stack's "
            "AnalysisTemplateArns: the stack may not run it",
        )
        return
    try:
        if own:
            template = check.read(
                "GetAnalysisTemplate",
                lambda: check.reader.get_analysis_template(membership.id, parsed["template"]),
            )
        else:
            template = check.read(
                "GetCollaborationAnalysisTemplate",
                lambda: check.reader.get_collaboration_analysis_template(
                    membership.collaboration_id, arn
                ),
            )
    except CollaborationResourceNotFound:
        check.refuse(TEMPLATE_FIELD, "no such analysis template in the membership's collaboration")
        return
    if template is None:
        return
    if template.format != "SQL":
        check.refuse(
            TEMPLATE_FIELD,
            f"is a {template.format} template; StartProtectedQuery runs SQL templates only",
        )
        return
    given = sql.get("parameters") or {}
    declared = {p.name: p for p in template.parameters}
    for name in given:
        if name not in declared:
            check.refuse(
                f"{PARAMETERS_FIELD}.{name}",
                "is not a parameter of the analysis template (it has "
                f"{_listed(declared) if declared else 'none'})",
            )
    for parameter in template.parameters:
        if parameter.name not in given:
            if not parameter.has_default:
                check.refuse(
                    f"{PARAMETERS_FIELD}.{parameter.name}",
                    f"is required: the template gives this {parameter.type} parameter no default",
                )
            continue
        problem = value_problem(str(given[parameter.name]), parameter.type)
        if problem:
            check.refuse(f"{PARAMETERS_FIELD}.{parameter.name}", problem)


def _check_output(check: _Check, membership: MembershipInfo | None) -> None:
    config = check.request.get("resultConfiguration")
    if not isinstance(config, Mapping):
        if membership is None:
            return
        default_bucket = membership.default_result_bucket
        if not membership.has_default_result_configuration:
            check.refuse(
                "resultConfiguration",
                "is required: the membership has no default result configuration",
            )
        elif default_bucket and default_bucket not in check.settings.result_bucket_names:
            check.refuse(
                "resultConfiguration",
                f"is left out, so results go to the membership's default bucket {default_bucket}, "
                "which is not one of the stack's ResultBucketNames: crq could not list the "
                "result files",
            )
        return
    output = config.get("outputConfiguration") or {}
    if "s3" in output:
        _check_s3(check, membership, output["s3"], f"{OUTPUT}.s3")
    elif "member" in output:
        _check_members(check, membership, [(f"{OUTPUT}.member.accountId", output["member"])])
    elif "distribute" in output:
        path = f"{OUTPUT}.distribute.locations"
        members = []
        for i, location in enumerate((output["distribute"] or {}).get("locations") or []):
            if "s3" in location:
                _check_s3(check, membership, location["s3"], f"{path}[{i}].s3")
            elif "member" in location:
                members.append((f"{path}[{i}].member.accountId", location["member"]))
        _check_members(check, membership, members)


def _check_s3(
    check: _Check, membership: MembershipInfo | None, s3: Mapping[str, Any], path: str
) -> None:
    bucket = s3.get("bucket")
    allowed = check.settings.result_bucket_names
    if bucket not in allowed:
        configured = f"it has {', '.join(allowed)}" if allowed else "it has none"
        check.refuse(
            f"{path}.bucket",
            f"is not one of the stack's ResultBucketNames ({configured}): crq could not list "
            "the result files; add the bucket to the stack parameter",
        )
    if membership is not None and "CAN_RECEIVE_RESULTS" not in membership.abilities:
        check.refuse(
            path,
            "the membership may not receive results (it lacks CAN_RECEIVE_RESULTS): send them "
            "to a member that can",
        )


def _check_members(
    check: _Check, membership: MembershipInfo | None, locations: list[tuple[str, Any]]
) -> None:
    if not locations or membership is None:
        return
    members = check.read(
        "ListMembers", lambda: check.reader.list_members(membership.collaboration_id)
    )
    if members is None:
        return
    by_account = {m.account_id: m for m in members}
    for field, location in locations:
        account = str((location or {}).get("accountId", ""))
        member = by_account.get(account)
        if member is None:
            check.refuse(field, "is not a member of the collaboration")
        elif member.status != "ACTIVE":
            check.refuse(field, f"this member is {member.status}, not ACTIVE")
        elif "CAN_RECEIVE_RESULTS" not in member.abilities:
            check.refuse(field, "this member may not receive results (no CAN_RECEIVE_RESULTS)")


def _check_compute(check: _Check) -> None:
    worker = (check.request.get("computeConfiguration") or {}).get("worker")
    if not isinstance(worker, Mapping):
        return
    settings = check.settings
    kind = worker.get("type")
    if settings.max_worker_type and isinstance(kind, str):
        order = WORKER_TYPES
        if kind in order and order.index(kind) > order.index(settings.max_worker_type):
            check.refuse(
                "computeConfiguration.worker.type",
                f"{kind} is larger than the stack allows per query (MaxWorkerType "
                f"{settings.max_worker_type})",
            )
    number = worker.get("number")
    if settings.max_worker_count and isinstance(number, int) and number > settings.max_worker_count:
        check.refuse(
            "computeConfiguration.worker.number",
            f"{number} workers is more than the stack allows per query (MaxWorkerCount "
            f"{settings.max_worker_count})",
        )


# The model's WorkerComputeType values, smallest first.
WORKER_TYPES = ("CR.1X", "CR.4X", "CR.8X")


# ---- parameter values ----------------------------------------------------------------------

_INTEGER_BITS = {
    "TINYINT": 8,
    "BYTE": 8,
    "SMALLINT": 16,
    "SHORT": 16,
    "INTEGER": 32,
    "INT": 32,
    "BIGINT": 64,
    "LONG": 64,
}
_DECIMAL = {"DECIMAL", "NUMERIC"}
_FLOAT = {"REAL", "FLOAT", "DOUBLE", "DOUBLE_PRECISION"}
_TIMESTAMP = {"TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMPTZ", "TIMESTAMP_LTZ"}
_TIME = {"TIME", "TIMETZ"}
_BOOLEAN_WORDS = {"true", "false", "t", "f", "1", "0", "yes", "no", "y", "n"}
_EXAMPLES = {
    "DATE": "2026-01-31",
    "TIMESTAMP": "2026-01-31 06:00:00",
    "TIME": "06:00:00",
    "BOOLEAN": "true or false",
}
# ISO 8601 forms, and the shorter ones Spark also reads (`2026`, `2026-01`, a date followed by a
# time): what every analytics engine reads the same way. A locale-dependent form (01/31/2026)
# is refused: Spark reads it as NULL, and its meaning depends on the engine's date style.
_YMD = r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?"
_DATE = re.compile(rf"^{_YMD}(?:[ T].*)?$")
_CLOCK = r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?"
_ZONE = r"(?:\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?))?"
_TIMESTAMP_RE = re.compile(rf"^{_YMD}(?:[ T]{_CLOCK})?{_ZONE}$")
_TIME_RE = re.compile(rf"^{_CLOCK}{_ZONE}$")


def value_problem(value: str, type_name: str) -> str | None:
    """Why `value` is not a valid `type_name` value (None: it is, or the type is unknown).

    Deliberately lenient where Clean Rooms' engines differ (spaces around, `T` or a space in a
    timestamp, an offset): preflight must never refuse what Clean Rooms would run. The message
    never quotes the value (parameter values are sensitive)."""
    text = value.strip()
    kind = type_name.upper()
    ok: bool
    if kind in _INTEGER_BITS:
        bits = _INTEGER_BITS[kind]
        ok = re.fullmatch(r"[+-]?\d+", text) is not None and (
            -(2 ** (bits - 1)) <= int(text) < 2 ** (bits - 1)
        )
    elif kind in _DECIMAL:
        ok = _decimal(text)
    elif kind in _FLOAT:
        ok = _decimal(text) or text.lower() in {"nan", "inf", "+inf", "-inf", "infinity"}
    elif kind == "BOOLEAN":
        ok = text.lower() in _BOOLEAN_WORDS
    elif kind == "DATE":
        found = _DATE.match(text)
        ok = found is not None and _valid_date(*found.groups())
    elif kind in _TIMESTAMP:
        found = _TIMESTAMP_RE.match(text)
        ok = (
            found is not None
            and _valid_date(*found.groups()[:3])
            and _valid_clock(*found.groups()[3:])
        )
    elif kind in _TIME:
        found = _TIME_RE.match(text)
        ok = found is not None and _valid_clock(*found.groups())
    else:  # CHAR, VARCHAR, STRING, binary types, and any type newer than this list
        return None
    if ok:
        return None
    family = "TIMESTAMP" if kind in _TIMESTAMP else "TIME" if kind in _TIME else kind
    example = _EXAMPLES.get(family)
    if kind in _INTEGER_BITS:
        bits = _INTEGER_BITS[kind]
        example = f"a whole number from {-(2 ** (bits - 1))} to {2 ** (bits - 1) - 1}"
    elif kind in _DECIMAL | _FLOAT:
        example = "a number such as 12.5"
    return f"is not a valid {kind} value" + (f" (expected {example})" if example else "")


def _decimal(text: str) -> bool:
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
        return False
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


def _valid_date(year: str, month: str | None, day: str | None) -> bool:
    try:
        date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return False
    return True


def _valid_clock(hour: str | None, minute: str | None, second: str | None) -> bool:
    if hour is None:
        return True
    try:
        time(int(hour), int(minute or 0), int(second or 0))
    except ValueError:
        return False
    return True


def _listed(names: Any) -> str:
    return ", ".join(sorted(names)) or "none"
