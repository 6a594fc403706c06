"""The engine over HTTP on loopback: `crq engine` and the sandbox run this.

    with make_server(engine, "127.0.0.1", 0) as server:   # server.url, server.port
        ...
    serve(engine, "127.0.0.1", 4599)                       # blocks until Ctrl-C

`run(config_path, host, port, timings)` is what the CLI calls: it blocks until Ctrl-C or
SIGTERM and then stops cleanly. Hosts other than loopback are refused unless `allow_remote`:
the engine has no authentication, and anyone who can reach it can read the tables.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from werkzeug import serving

from .config import load_config
from .engine import Engine
from .timings import Timings
from .wsgi import make_app

log = logging.getLogger("crq.engine.server")


class RemoteHostRefused(ValueError):
    """The engine was asked to listen beyond loopback without `allow_remote`."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _QuietHandler(serving.WSGIRequestHandler):
    # werkzeug prints a line per request to stderr; the engine logs what matters itself.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("request", extra={"path": self.path, "status": str(code)})


class EngineServer:
    """A threaded werkzeug server for one engine. `start()` serves from a background thread;
    `serve_forever()` blocks; `shutdown()` stops either."""

    def __init__(self, engine: Engine, host: str, port: int, *, allow_remote: bool = False):
        if not (allow_remote or is_loopback(host)):
            raise RemoteHostRefused(
                f"refusing to listen on {host}: the engine has no authentication; "
                "use a loopback address such as 127.0.0.1"
            )
        self.engine = engine
        self._server: serving.BaseWSGIServer = serving.make_server(
            host, port, make_app(engine), threaded=True, request_handler=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> EngineServer:
        self._thread = threading.Thread(
            target=self.serve_forever, name="crq-engine-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        # A short poll interval: shutdown() waits for the loop to notice.
        self._server.serve_forever(poll_interval=0.05)

    def shutdown(self) -> None:
        """Stop serving (from another thread than serve_forever's) and close the socket."""
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> EngineServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.shutdown()


def make_server(
    engine: Engine, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False
) -> EngineServer:
    """A threaded HTTP server for `engine` on (host, port); port 0 picks a free one. Call
    start() (or use it as a context manager)."""
    server = EngineServer(engine, host, port, allow_remote=allow_remote)
    engine.open()
    return server


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 4599) -> None:
    """Serve HTTP until interrupted (KeyboardInterrupt), then shut the engine down."""
    server = make_server(engine, host, port)
    try:
        server.serve_forever()
    finally:
        server.shutdown()
        engine.shutdown()


def run(
    config_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 4599,
    timings: Timings | None = None,
    *,
    allow_remote: bool = False,
    on_ready: Callable[[EngineServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve the collaboration file's world until Ctrl-C, SIGTERM or `stop`, then stop cleanly.

    Raises CollaborationFileError for a malformed file and RemoteHostRefused for a
    non-loopback host, before anything listens. `on_ready(server)` is called once the port is
    open (`server.url`, e.g. to print it).
    """
    engine = Engine(load_config(config_path), timings=timings or Timings.demo())
    server = make_server(engine, host, port, allow_remote=allow_remote)
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_signal)
    server.start()
    log.info("engine listening", extra={"url": server.url, "config": str(config_path)})
    if on_ready is not None:
        on_ready(server)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        engine.shutdown()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        log.info("engine stopped", extra={"url": server.url})
