"""The REST-JSON protocol of Clean Rooms as a WSGI application, routed by botocore's model.

Each operation's `http.method` and `http.requestUri` give its route; each input member's
`location` says where its value travels: `uri` (a path label), `querystring` (by its
`locationName`), or the JSON body. Answers are JSON with epoch-second timestamps; errors carry
`x-amzn-ErrorType` and a body with `message` and the exception shape's other members.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from crq.spec.apimodel import FieldError, service_model

from .errors import ApiError, UnknownOperationException, ValidationException

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("crq.engine.http")
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Route:
    operation: str
    method: str
    segments: tuple[str, ...]  # literal segments, or "{label}"
    uri: dict[str, str]  # label -> member name
    query: dict[str, tuple[str, str]]  # query key -> (member name, type name)

    @property
    def literals(self) -> int:
        return sum(1 for s in self.segments if not s.startswith("{"))

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if method != self.method or len(segments) != len(self.segments):
            return None
        labels: dict[str, str] = {}
        for want, got in zip(self.segments, segments, strict=True):
            if want.startswith("{"):
                if not got:
                    return None
                labels[self.uri[want.strip("{}+")]] = unquote(got)
            elif want != got:
                return None
        return labels


@lru_cache(maxsize=1)
def routes() -> tuple[Route, ...]:
    """A route for every operation of the model (so an unimplemented one is named)."""
    model = service_model()
    out = []
    for name in model.operation_names:
        op = model.operation_model(name)
        uri: dict[str, str] = {}
        query: dict[str, tuple[str, str]] = {}
        members = op.input_shape.members if op.input_shape is not None else {}
        for member, shape in members.items():
            location = shape.serialization.get("location")
            key = shape.serialization.get("name", member)
            if location == "uri":
                uri[key] = member
            elif location == "querystring":
                query[key] = (member, shape.type_name)
        path = op.http["requestUri"].split("?")[0]
        out.append(Route(name, op.http["method"], tuple(path.strip("/").split("/")), uri, query))
    # Literal segments win over labels when two routes could both match.
    return tuple(sorted(out, key=lambda r: -r.literals))


def resolve(method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
    segments = raw_path.split("?")[0].strip("/").split("/")
    for route in routes():
        labels = route.match(method, segments)
        if labels is not None:
            return route, labels
    return None


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()  # rest-json timestamps default to epoch seconds
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


class WsgiApp:
    """The engine behind WSGI: `WsgiApp(engine)(environ, start_response)`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        operation = "?"
        try:
            operation, params = self.parse(environ)
            status, body = 200, to_json(self.engine.handle(operation, params))
            headers = [("Content-Type", "application/json")]
        except ApiError as exc:
            status, body = exc.status, exc.body()
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", exc.code)]
            log.info(
                "request refused",
                extra={"operation": operation, "error": exc.code, "requestId": request_id},
            )
        except Exception as exc:  # an engine bug: answer like the service, keep serving
            log.exception("request failed", extra={"operation": operation})
            status, body = 500, {"message": f"Internal engine error: {exc}"}
            headers = [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", "InternalServerException"),
            ]
        payload = json.dumps(body).encode()
        headers += [("x-amzn-RequestId", request_id), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]

    def parse(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The operation and its input (uri, querystring and body members merged)."""
        method = environ.get("REQUEST_METHOD", "GET").upper()
        # RAW_URI keeps %2F inside a label (an ARN in the path); PATH_INFO has decoded it.
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
        found = resolve(method, raw_path)
        if found is None:
            raise UnknownOperationException(f"No Clean Rooms operation at {method} {raw_path}")
        route, params = found
        if route.operation not in self.engine.operations:
            raise UnknownOperationException(
                f"The local Clean Rooms engine does not implement {route.operation}"
            )
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        for key, values in query.items():
            if key in route.query:
                member, type_name = route.query[key]
                params[member] = _typed(member, type_name, values)
        body = _read_body(environ)
        if body:
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise ValidationException(
                    "Invalid request: the body is not valid JSON",
                    fields=[FieldError("", "the body is not valid JSON")],
                ) from exc
            if not isinstance(document, dict):
                raise ValidationException(
                    "Invalid request: the body must be a JSON object",
                    fields=[FieldError("", "the body must be a JSON object")],
                )
            # Body members never override uri/querystring ones; unknown keys are kept so that
            # the model check reports them.
            params = {**document, **params}
        return route.operation, params


def _typed(member: str, type_name: str, values: list[str]) -> Any:
    if type_name == "list":
        return values
    value = values[-1]
    if type_name in ("integer", "long"):
        try:
            return int(value)
        except ValueError as exc:
            raise ValidationException(
                f"Invalid request: {member}: must be an integer",
                fields=[FieldError(member, "must be an integer")],
            ) from exc
    if type_name == "boolean":
        return value.lower() == "true"
    return value


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if length > 0:
        data: bytes = stream.read(length)
        return data
    # Chunked uploads arrive without a length; werkzeug marks them as terminated input.
    if environ.get("wsgi.input_terminated"):
        rest: bytes = stream.read()
        return rest
    return b""
