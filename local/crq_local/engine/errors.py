"""The Clean Rooms API errors, in the REST-JSON shape botocore parses into modelled exceptions.

botocore's rest-json parser takes the error code from the `x-amzn-ErrorType` header and the
message from the body's `message`; the other body members (`reason`, `fieldList`, `quotaName`,
...) are the modelled fields of the exception shape. The HTTP status comes from the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from crq.spec.apimodel import FieldError, service_model


@lru_cache(maxsize=32)
def http_status(code: str) -> int:
    try:
        status: int = service_model().shape_for(code).metadata["error"]["httpStatusCode"]
    except Exception:  # not a modelled error (e.g. UnknownOperationException)
        return 400
    return status


class ApiError(Exception):
    """An error answer: `code` is the exception name, `fields` the body next to `message`."""

    code = "InternalServerException"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    @property
    def status(self) -> int:
        return http_status(self.code)

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.fields}


class ValidationException(ApiError):
    code = "ValidationException"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "FIELD_VALIDATION_FAILED",
        fields: Iterable[FieldError] = (),
    ) -> None:
        field_list = [{"name": f.field, "message": f.message} for f in fields]
        super().__init__(message, reason=reason, fieldList=field_list or None)


def invalid_fields(errors: list[FieldError]) -> ValidationException:
    summary = "; ".join(str(e) for e in errors[:5]) + ("; ..." if len(errors) > 5 else "")
    return ValidationException(f"Invalid request: {summary}", fields=errors)


class ResourceNotFoundException(ApiError):
    code = "ResourceNotFoundException"

    def __init__(self, message: str, *, resource_id: str, resource_type: str) -> None:
        super().__init__(message, resourceId=resource_id, resourceType=resource_type)


class AccessDeniedException(ApiError):
    code = "AccessDeniedException"

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INSUFFICIENT_PERMISSIONS")


class ConflictException(ApiError):
    code = "ConflictException"

    def __init__(self, message: str, *, resource_id: str, resource_type: str) -> None:
        super().__init__(
            message, resourceId=resource_id, resourceType=resource_type, reason="INVALID_STATE"
        )


class ThrottlingException(ApiError):
    code = "ThrottlingException"


class ServiceQuotaExceededException(ApiError):
    code = "ServiceQuotaExceededException"

    def __init__(self, message: str, *, quota_name: str, quota_value: float) -> None:
        super().__init__(message, quotaName=quota_name, quotaValue=quota_value)


class InternalServerException(ApiError):
    code = "InternalServerException"


class UnknownOperationException(ApiError):
    code = "UnknownOperationException"
