"""S3 says when a spec is deleted: moto's S3, as the sandbox runs it, does too.

S3 sends `Object Deleted` to EventBridge when `aws s3 rm` puts a delete marker on a versioned
object; moto only does so when the last version of an unversioned object goes. The start
function removes a deleted spec's schedule on that event, so the sandbox adds it: after moto
creates a delete marker, the same EventBridge notification S3 sends (`DeleteMarkerCreated`).
Process-wide and idempotent; a bucket without EventBridge notifications sees no difference.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

_INSTALLED = "_crq_sends_delete_marker_events"


def install() -> None:
    from moto.s3 import models, notifications

    backend = models.S3Backend
    if getattr(backend.delete_object, _INSTALLED, False):
        return
    original = backend.delete_object

    @functools.wraps(original)
    def delete_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        result = original(self, bucket_name, key_name, *args, **kwargs)
        deleted, meta = result
        version_id = args[0] if args else kwargs.get("version_id")
        if deleted and version_id is None and meta.get("delete-marker") == "true":
            marker = SimpleNamespace(
                name=key_name, size=0, etag="", version_id=meta.get("version-id")
            )
            notifications.send_event(
                self.account_id,
                notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
                self.get_bucket(bucket_name),
                marker,
            )
        return result

    setattr(delete_object, _INSTALLED, True)
    backend.delete_object = delete_object  # type: ignore[method-assign]
