"""S3: reading spec objects (one version, never more than the size limit) and listing results."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from crq.adapters.aws_errors import error_code
from crq.errors import ResultsUnavailable, SpecUnreadable
from crq.ledger import ResultObject
from crq.ports import SpecObject
from crq.spec.limits import MAX_SPEC_BYTES, too_large

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Errors that mean "this spec cannot be read, and asking again will not change that". Others
# (throttling, 5xx) propagate, so the event is retried.
_UNREADABLE = {
    "NoSuchKey": "the spec object does not exist",
    "NoSuchVersion": "that version of the spec object does not exist",
    "NoSuchBucket": "the specs bucket does not exist",
    # Without s3:ListBucket, S3 answers a missing key with 403, not 404.
    "AccessDenied": "the spec object does not exist, or crq is not allowed to read it",
    "InvalidObjectState": "the spec object is archived and cannot be read",
    "404": "the spec object does not exist",
    "403": "the spec object does not exist, or crq is not allowed to read it",
}
_CONTENT_RANGE = re.compile(r"bytes \d+-\d+/(\d+)")


class SpecStore:
    def __init__(self, client: S3Client, limit: int = MAX_SPEC_BYTES) -> None:
        self._client = client
        self._limit = limit

    def get_spec(self, bucket: str, key: str, version_id: str | None) -> SpecObject:
        source = f"s3://{bucket}/{key}"
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        # One byte past the limit tells "at the limit" from "over it" without reading a large
        # object whole; the Content-Range header gives the real size.
        kwargs["Range"] = f"bytes=0-{self._limit}"
        try:
            response = self._client.get_object(**kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if code == "InvalidRange":  # a zero-byte object has no byte 0
                return SpecObject(data=b"", size=0, version_id=version_id, etag=None)
            if code in _UNREADABLE:
                raise SpecUnreadable(source, _UNREADABLE[code]) from exc
            raise
        body = response["Body"]
        try:
            size = _total_size(response)
            if size > self._limit:
                raise SpecUnreadable(source, too_large(size))
            data = body.read(self._limit + 1)
        finally:
            body.close()
        if len(data) > self._limit:  # no Content-Range (range ignored): trust what was read
            raise SpecUnreadable(source, too_large(None))
        etag = response.get("ETag")
        return SpecObject(
            data=data,
            size=len(data),
            version_id=response.get("VersionId") or version_id,
            etag=etag.strip('"') if etag else None,
        )


def _total_size(response: Any) -> int:
    match = _CONTENT_RANGE.fullmatch(str(response.get("ContentRange") or ""))
    if match:
        return int(match.group(1))
    return int(response.get("ContentLength") or 0)


class ResultLister:
    def __init__(self, client: S3Client) -> None:
        self._client = client

    def list_objects(self, location: str, limit: int) -> tuple[list[ResultObject], bool]:
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        found: list[ResultObject] = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue  # folder markers are not results
                    if len(found) >= limit:
                        return found, True
                    found.append(
                        ResultObject(uri=f"s3://{bucket}/{obj['Key']}", size=obj.get("Size", 0))
                    )
        except ClientError as exc:
            code = error_code(exc)
            if code in ("AccessDenied", "NoSuchBucket", "403", "404"):
                raise ResultsUnavailable(location, code) from exc
            raise
        return found, False
