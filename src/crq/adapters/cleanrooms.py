"""CleanRoomsGateway: the protected-query calls crq makes, with ClientError turned into domain
errors, and parameter values scrubbed from every message that leaves this module.

StartProtectedQuery has no client token, so its client must never retry on its own: a request
that reached Clean Rooms but whose answer was lost would start a second, billed query. The
gateway therefore takes a separate client for starts, built with retries off (see `build`), and
the start use case deals with the unknown outcome (intent + reconcile).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crq.adapters.aws_errors import error_code
from crq.errors import (
    CollaborationReadFailed,
    CollaborationResourceNotFound,
    QueryAlreadyEnded,
    QueryNotFound,
    StartDeferred,
    StartRefused,
)
from crq.ports import ProtectedQuery, QuerySummary
from crq.preflight import MemberInfo, MembershipInfo, TemplateInfo, TemplateParameter

if TYPE_CHECKING:
    from mypy_boto3_cleanrooms import CleanRoomsServiceClient

PAGE_SIZE = 100  # ListProtectedQueries' maxResults upper bound
REDACTED = "***"
_REFUSED = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ConflictException",
    }
)
_DEFERRED = frozenset({StartDeferred.QUOTA, StartDeferred.THROTTLED})


class CleanRoomsGateway:
    def __init__(
        self, client: CleanRoomsServiceClient, start_client: CleanRoomsServiceClient
    ) -> None:
        self._client = client
        self._start_client = start_client

    def start_protected_query(self, request: Mapping[str, Any]) -> ProtectedQuery:
        parameters = _parameter_values(request.get("sqlParameters"))
        try:
            response = self._start_client.start_protected_query(**request)
        except ClientError as exc:
            code, message, reason = _details(exc)
            message = scrub(message, parameters)
            if code in _DEFERRED:
                raise StartDeferred(code, message) from exc
            if code == "ValidationException" and reason == StartDeferred.IAM_DELAY:
                raise StartDeferred(StartDeferred.IAM_DELAY, message) from exc
            if code in _REFUSED:
                raise StartRefused(
                    code, message + _field_list(exc, parameters, message), reason=reason
                ) from exc
            raise
        return _query(response["protectedQuery"])

    def list_queries(self, membership_id: str, not_before: datetime | None) -> list[QuerySummary]:
        found: list[QuerySummary] = []
        kwargs: dict[str, Any] = {"membershipIdentifier": membership_id, "maxResults": PAGE_SIZE}
        while True:
            page = self._client.list_protected_queries(**kwargs)
            summaries = [_summary(item) for item in page.get("protectedQueries", [])]
            found.extend(summaries)
            token = page.get("nextToken")
            # Newest first: once a page reaches back past `not_before`, older pages hold nothing
            # the caller needs. Without a bound, one page serves to count active queries.
            if not token or not_before is None:
                break
            if summaries and min(s.create_time for s in summaries) < not_before:
                break
            kwargs["nextToken"] = token
        return found

    def get_query(self, membership_id: str, query_id: str) -> ProtectedQuery:
        try:
            response = self._client.get_protected_query(
                membershipIdentifier=membership_id, protectedQueryIdentifier=query_id
            )
        except ClientError as exc:
            code, message, _ = _details(exc)
            if code == "ResourceNotFoundException":
                raise QueryNotFound(membership_id, query_id, message) from exc
            raise
        return _query(response["protectedQuery"])

    def cancel_query(self, membership_id: str, query_id: str) -> None:
        try:
            self._client.update_protected_query(
                membershipIdentifier=membership_id,
                protectedQueryIdentifier=query_id,
                targetStatus="CANCELLED",
            )
        except ClientError as exc:
            code, message, _ = _details(exc)
            if code == "ConflictException":
                raise QueryAlreadyEnded(query_id, message) from exc
            if code == "ResourceNotFoundException":
                raise QueryNotFound(membership_id, query_id, message) from exc
            raise

    # ---- the reads preflight makes (crq.preflight.CollaborationReader) ----------------------

    def get_membership(self, membership_id: str) -> MembershipInfo:
        with _read("membership " + membership_id):
            item = self._client.get_membership(membershipIdentifier=membership_id)["membership"]
        default = item.get("defaultResultConfiguration") or {}
        s3 = (default.get("outputConfiguration") or {}).get("s3") or {}
        return MembershipInfo(
            id=item["id"],
            arn=item["arn"],
            collaboration_id=item["collaborationId"],
            status=item["status"],
            abilities=frozenset(item.get("memberAbilities") or ()),
            has_default_result_configuration=bool(default),
            default_result_bucket=s3.get("bucket"),
        )

    def get_analysis_template(self, membership_id: str, template_id: str) -> TemplateInfo:
        with _read("analysis template " + template_id):
            item = self._client.get_analysis_template(
                membershipIdentifier=membership_id, analysisTemplateIdentifier=template_id
            )["analysisTemplate"]
        return _template(item)

    def get_collaboration_analysis_template(
        self, collaboration_id: str, template_arn: str
    ) -> TemplateInfo:
        with _read("analysis template " + template_arn):
            item = self._client.get_collaboration_analysis_template(
                collaborationIdentifier=collaboration_id, analysisTemplateArn=template_arn
            )["collaborationAnalysisTemplate"]
        return _template(item)

    def list_members(self, collaboration_id: str) -> list[MemberInfo]:
        members: list[MemberInfo] = []
        kwargs: dict[str, Any] = {"collaborationIdentifier": collaboration_id}
        with _read("collaboration " + collaboration_id):
            while True:
                page = self._client.list_members(**kwargs)
                members += [
                    MemberInfo(
                        account_id=m["accountId"],
                        status=m["status"],
                        abilities=frozenset(m.get("abilities") or ()),
                    )
                    for m in page.get("memberSummaries", [])
                ]
                if not page.get("nextToken"):
                    return members
                kwargs["nextToken"] = page["nextToken"]


@contextmanager
def _read(what: str) -> Iterator[None]:
    """A read for preflight: not found is an answer, any other failure a skipped check."""
    try:
        yield
    except ClientError as exc:
        code, message, _ = _details(exc)
        if code == "ResourceNotFoundException":
            raise CollaborationResourceNotFound(what, message) from exc
        raise CollaborationReadFailed(code or "ClientError", message) from exc
    except BotoCoreError as exc:  # connection, timeout: the start call will meet it too
        raise CollaborationReadFailed(type(exc).__name__, str(exc)) from exc


def _template(item: Mapping[str, Any]) -> TemplateInfo:
    return TemplateInfo(
        arn=item["arn"],
        format=item.get("format", "SQL"),
        parameters=tuple(
            TemplateParameter(name=p["name"], type=p["type"], has_default="defaultValue" in p)
            for p in item.get("analysisParameters") or ()
        ),
    )


def keep_retry_info(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    """botocore `after-call.cleanrooms.GetProtectedQuery` handler: put `error.retry` back.

    The service returns `protectedQuery.error.retry.retryable`; botocore models older than
    that field drop it while parsing. Read it from the raw body when the parsed answer lacks
    it, so the tracker can use Clean Rooms' own verdict."""
    error = (parsed.get("protectedQuery") or {}).get("error")
    if not isinstance(error, dict) or "retry" in error:
        return
    try:
        raw = json.loads(http_response.content or b"{}")
    except (ValueError, TypeError):
        return
    retry = ((raw.get("protectedQuery") or {}).get("error") or {}).get("retry")
    if isinstance(retry, dict) and isinstance(retry.get("retryable"), bool):
        error["retry"] = {"retryable": retry["retryable"]}


def _summary(item: Mapping[str, Any]) -> QuerySummary:
    return QuerySummary(
        id=item["id"],
        membership_id=item["membershipId"],
        membership_arn=item["membershipArn"],
        create_time=item["createTime"],
        status=item["status"],
    )


def _query(item: Mapping[str, Any]) -> ProtectedQuery:
    sql = item.get("sqlParameters")
    parameters = _parameter_values(sql)
    error = item.get("error") or {}
    retry = error.get("retry") if isinstance(error.get("retry"), dict) else {}
    retryable = retry.get("retryable") if isinstance(retry, dict) else None
    result = item.get("result") or {}
    return ProtectedQuery(
        id=item["id"],
        membership_id=item["membershipId"],
        membership_arn=item["membershipArn"],
        create_time=item["createTime"],
        status=item["status"],
        sql_parameters=sql,
        result_configuration=item.get("resultConfiguration"),
        statistics=item.get("statistics"),
        result_output=result.get("output"),
        error_code=error.get("code"),
        error_message=scrub(error["message"], parameters) if error.get("message") else None,
        error_retryable=retryable if isinstance(retryable, bool) else None,
        differential_privacy=item.get("differentialPrivacy"),
    )


def _parameter_values(sql: Any) -> list[str]:
    if not isinstance(sql, Mapping) or not isinstance(sql.get("parameters"), Mapping):
        return []
    return [str(v) for v in sql["parameters"].values() if isinstance(v, str) and v]


def scrub(message: str, values: list[str]) -> str:
    """`message` with every query parameter value replaced by ***.

    Values shorter than 3 characters are replaced only where they stand alone or quoted, so a
    parameter "1" does not mangle "line 1, column 10" beyond recognition.
    """
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 3:
            message = message.replace(value, REDACTED)
        else:
            message = re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", REDACTED, message)
    return message


def _details(exc: ClientError) -> tuple[str, str, str | None]:
    error = exc.response.get("Error", {})
    code = error_code(exc)
    message = str(error.get("Message", "") or exc.response.get("message", "") or "")
    reason = exc.response.get("reason") or error.get("reason")
    return code, message, str(reason) if reason else None


def _field_list(exc: ClientError, parameters: list[str], message: str) -> str:
    """The fields Clean Rooms names, those the message does not already say."""
    fields = exc.response.get("fieldList")
    if not isinstance(fields, list):
        return ""
    parts = [
        text
        for text in (
            f"{field.get('name')}: {scrub(str(field.get('message', '')), parameters)}"
            for field in fields
            if isinstance(field, Mapping)
        )
        if text not in message
    ]
    return f" ({'; '.join(parts)})" if parts else ""
