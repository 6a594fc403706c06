"""Checking a port before a werkzeug server binds it (a TCP port to listen on).

werkzeug's `make_server` answers a port in use by printing to stderr and calling `sys.exit(1)`;
a probe first turns that into an error that names the option to change.
"""

from __future__ import annotations

import socket


class PortInUse(OSError):
    """Something already listens on the port."""

    def __init__(self, host: str, port: int, reason: str, option: str) -> None:
        self.host, self.port, self.reason, self.option = host, port, reason, option
        super().__init__(self.describe())

    def describe(self, purpose: str = "") -> str:
        what = f" for {purpose}" if purpose else ""
        return (
            f"cannot listen on {self.host}:{self.port}{what}: {self.reason} "
            f"(choose another with {self.option})"
        )


def check_free(host: str, port: int, option: str) -> None:
    """Raise PortInUse if (host, port) cannot be bound; port 0 (any free port) always can."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The same option werkzeug sets, so a port in TIME_WAIT is not reported as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(host, port, exc.strerror or str(exc), option) from exc
