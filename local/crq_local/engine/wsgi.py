"""The REST-JSON protocol of Clean Rooms as a WSGI application, routed by botocore's model.

Each operation's `http.method` and `http.requestUri` give a werkzeug `Rule`; each input
member's `location` says where its value travels: `uri` (a path label), `querystring` (by its
`locationName`), or the JSON body. Answers are JSON with epoch-second timestamps; errors carry
`x-amzn-ErrorType` and a body with `message` and the exception shape's other members.

`make_app(engine)` is the application the server and the in-process handler both run.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from crq.spec.apimodel import FieldError, service_model

from .engine import Engine
from .errors import ApiError, UnknownOperationException, ValidationException

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("crq.engine.http")
_LABEL = re.compile(r"\{(\w+)(\+?)\}")


@dataclass(frozen=True)
class _Members:
    """Where one operation's input members travel besides the body."""

    uri: dict[str, str]  # path label -> member name
    query: dict[str, tuple[str, str]]  # query key -> (member name, type name)


@lru_cache(maxsize=1)
def _routes() -> tuple[Map, dict[str, _Members]]:
    """A rule for every operation of the model (so an unimplemented one is named)."""
    model = service_model()
    rules: list[Rule] = []
    members: dict[str, _Members] = {}
    for name in model.operation_names:
        op = model.operation_model(name)
        uri: dict[str, str] = {}
        query: dict[str, tuple[str, str]] = {}
        shapes = op.input_shape.members if op.input_shape is not None else {}
        for member, shape in shapes.items():
            location = shape.serialization.get("location")
            key = shape.serialization.get("name", member)
            if location == "uri":
                uri[key] = member
            elif location == "querystring":
                query[key] = (member, shape.type_name)
        path = op.http["requestUri"].split("?")[0]
        # `{label}` is one path segment, `{label+}` the rest of the path. werkzeug tries literal
        # segments before labels when two rules could both match.
        pattern = _LABEL.sub(lambda m: f"<{'path' if m[2] else 'string'}:{m[1]}>", path)
        rules.append(Rule(pattern, endpoint=name, methods=[op.http["method"]]))
        members[name] = _Members(uri, query)
    return Map(rules, strict_slashes=False, merge_slashes=False), members


def resolve(method: str, raw_path: str) -> tuple[str, dict[str, str]] | None:
    """The operation at (method, raw path) and its path labels as members, decoded."""
    url_map, members = _routes()
    path = raw_path.split("?")[0]
    try:
        # Matched on the raw path: a label may hold an encoded '/' (an ARN).
        operation, labels = url_map.bind("localhost").match(path, method=method.upper())
    except HTTPException:
        return None
    uri = members[str(operation)].uri
    return str(operation), {uri[label]: unquote(value) for label, value in labels.items()}


def parse(engine: Engine, request: Request) -> tuple[str, dict[str, Any]]:
    """The operation and its input (uri, querystring and body members merged)."""
    # RAW_URI keeps %2F inside a label (an ARN in the path); PATH_INFO has decoded it.
    environ = request.environ
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
    found = resolve(request.method, raw_path)
    if found is None:
        raise UnknownOperationException(f"No Clean Rooms operation at {request.method} {raw_path}")
    operation, params = found
    if operation not in engine.operations:
        raise UnknownOperationException(
            f"The local Clean Rooms engine does not implement {operation}"
        )
    in_query = _routes()[1][operation].query
    for key, values in request.args.lists():
        if key in in_query:
            member, type_name = in_query[key]
            params[member] = _typed(member, type_name, values)
    body = request.get_data()  # Content-Length, or a chunked body werkzeug marks terminated
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
        # Body members never override uri/querystring ones; unknown keys are kept so that the
        # model check reports them.
        params = {**document, **params}
    return operation, params


def answer(engine: Engine, request: Request) -> Response:
    """The engine's response to one HTTP request."""
    request_id = str(uuid.uuid4())
    operation = "?"
    headers: dict[str, str] = {}
    try:
        operation, params = parse(engine, request)
        status, body = 200, to_json(engine.handle(operation, params))
    except ApiError as exc:
        status, body = exc.status, exc.body()
        headers["x-amzn-ErrorType"] = exc.code
        log.info(
            "request refused",
            extra={"operation": operation, "error": exc.code, "requestId": request_id},
        )
    except Exception as exc:  # an engine bug: answer like the service, keep serving
        log.exception("request failed", extra={"operation": operation})
        status, body = 500, {"message": f"Internal engine error: {exc}"}
        headers["x-amzn-ErrorType"] = "InternalServerException"
    headers["x-amzn-RequestId"] = request_id
    return Response(
        json.dumps(body),
        # The standard reason phrase ("400 Bad Request"); werkzeug's own is upper case.
        status=f"{status} {HTTPStatus(status).phrase}",
        headers=headers,
        content_type="application/json",
    )


def make_app(engine: Engine) -> WSGIApplication:
    """The engine behind WSGI: `make_app(engine)(environ, start_response)`."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return answer(engine, Request(environ))(environ, start_response)

    return app


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()  # rest-json timestamps default to epoch seconds
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


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
