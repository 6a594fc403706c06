"""The in-process front door: a botocore `before-send` handler that answers cleanrooms requests.

botocore emits `before-send.cleanrooms.<Operation>` with the prepared request just before it
would go on the wire; the first handler returning a response wins. The engine's handler turns
the request into a werkzeug request for the same app the server runs (`wsgi.answer`), and
returns an `AWSResponse`.
It answers only the operations the engine implements, sent to Clean Rooms' AWS endpoint, and
returns None for anything else (a client with an explicit endpoint URL is left alone).

Ordering matters: moto registers its own stubber (it also has a cleanrooms backend) in
`botocore.handlers.BUILTIN_HANDLERS`, which every new session copies. The engine's dispatcher is
inserted there as REGISTER_FIRST, so it runs before moto's; and since botocore calls every
handler of the event anyway, the answered request's URL is then pointed at a host moto does not
serve, so moto's cleanrooms backend never acts on a request the engine answered.

    with installed(engine): ...      # every session created from now on, and the default one
    install(engine, session) / uninstall(engine, session)   # one session only
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore import handlers
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from werkzeug.test import EnvironBuilder

from .engine import Engine
from .wsgi import answer as wsgi_answer

EVENT = "before-send.cleanrooms"
ANSWERED_HOST = "answered-by-crq-engine.invalid"
_DISPATCH_ID = "crq-engine-dispatch"
_AWS_HOST = re.compile(r"cleanrooms(-fips)?\.[a-z0-9-]+\.(amazonaws\.com(\.cn)?|api\.aws)")

_lock = threading.Lock()
_active: Engine | None = None


@contextmanager
def installed(engine: Engine) -> Iterator[Engine]:
    """Answer cleanrooms requests of every boto3/botocore session in this process."""
    engine.open()
    _install_global(engine)
    try:
        yield engine
    finally:
        _uninstall_global(engine)


def install(engine: Engine, session: Any) -> None:
    """Answer cleanrooms requests of one boto3 or botocore session (clients made after)."""
    engine.open()

    def handler(request: AWSPreparedRequest, event_name: str = "", **_: Any) -> Any:
        return _handle(engine, request, event_name)

    _emitter(session).register_first(EVENT, handler, unique_id=_session_handler_id(engine))


def uninstall(engine: Engine, session: Any) -> None:
    _emitter(session).unregister(EVENT, unique_id=_session_handler_id(engine))


class _Raw:
    """What AWSResponse reads the body from (`stream()`)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        if self._data:
            yield self._data


def answer(engine: Engine, request: AWSPreparedRequest) -> AWSResponse:
    """Run one prepared request through the engine's HTTP front (wsgi.py)."""
    url = urlsplit(request.url)
    headers = [
        (name, value if isinstance(value, str) else value.decode())
        for name, value in request.headers.items()
    ]
    builder = EnvironBuilder(
        # The raw path and query: RAW_URI keeps an encoded '/' inside a label.
        path=url.path + (f"?{url.query}" if url.query else ""),
        base_url=f"{url.scheme or 'https'}://{url.netloc or 'localhost'}",
        method=request.method,
        headers=headers,
        data=_body_bytes(request.body),
    )
    try:
        response = wsgi_answer(engine, builder.get_request())
    finally:
        builder.close()
    out = HTTPHeaders()
    for name, value in response.headers.items():
        out[name] = value
    return AWSResponse(request.url, response.status_code, out, _Raw(response.get_data()))


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    data = body.read()  # a seekable stream: botocore rewinds it before a retry
    if hasattr(body, "seek"):
        body.seek(0)
    return data if isinstance(data, bytes) else str(data).encode()


def _aws_endpoint(url: str) -> bool:
    """True for Clean Rooms' own endpoints: a client given an explicit endpoint URL (e.g.
    AWS_ENDPOINT_URL_CLEANROOMS, an engine server) is left to talk to it."""
    host = urlsplit(url).hostname or ""
    return host == ANSWERED_HOST or bool(_AWS_HOST.fullmatch(host))


def _handle(engine: Engine, request: AWSPreparedRequest, event_name: str) -> AWSResponse | None:
    if event_name.rsplit(".", 1)[-1] not in engine.operations or not _aws_endpoint(request.url):
        return None
    response = answer(engine, request)
    url = urlsplit(request.url)
    request.url = urlunsplit((url.scheme, ANSWERED_HOST, url.path, url.query, url.fragment))
    return response


def _dispatch(request: AWSPreparedRequest, event_name: str = "", **_: Any) -> AWSResponse | None:
    engine = _active
    return None if engine is None else _handle(engine, request, event_name)


def _install_global(engine: Engine) -> None:
    """Route cleanrooms requests of this process to `engine`: sessions created from now on
    (including boto3's default session after moto resets it), and the current default one."""
    global _active
    with _lock:
        if _active is not None and _active is not engine:
            raise RuntimeError("another local Clean Rooms engine is already installed")
        _active = engine
        spec = (EVENT, _dispatch, handlers.REGISTER_FIRST)
        if spec not in handlers.BUILTIN_HANDLERS:
            handlers.BUILTIN_HANDLERS.insert(0, spec)
    if boto3.DEFAULT_SESSION is not None:
        emitter = boto3.DEFAULT_SESSION._session.get_component("event_emitter")
        emitter.register_first(EVENT, _dispatch, unique_id=_DISPATCH_ID)


def _uninstall_global(engine: Engine) -> None:
    """Stop routing to `engine`. The dispatcher stays registered but answers nothing."""
    global _active
    with _lock:
        if _active is engine:
            _active = None


def _emitter(session: Any) -> Any:
    botocore_session = getattr(session, "_session", session)  # boto3.Session wraps botocore's
    return botocore_session.get_component("event_emitter")


def _session_handler_id(engine: Engine) -> str:
    return f"crq-engine-{id(engine)}"
