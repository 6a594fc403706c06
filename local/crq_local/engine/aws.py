"""The engine's boto3 clients (S3 for results and S3 tables, EventBridge for events).

They are made up front, when the engine opens a front door (installed in-process, or its HTTP
server made), from the environment (or an explicit endpoint) as it is then, after any
`mock_aws` has started; then the engine's threads share them (clients are thread-safe once
made). Making them lazily, under a lock, in the first query threads stalled a burst's first wave
for seconds: every query waited on the one thread building a session and two clients.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

# Bounded: an unreachable endpoint must not hold a query or the shutdown for minutes.
CLIENT_CONFIG = Config(
    connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}
)


# What the engine calls: S3 (results, S3 tables) and EventBridge (status events).
SERVICES = ("s3", "events")


@lru_cache(maxsize=1)
def _loader() -> Any:
    return botocore.loaders.create_loader()


def new_session() -> boto3.session.Session:
    """A boto3 session configured by the environment, sharing one model loader: each new
    session would otherwise parse the service models again."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    return boto3.session.Session(botocore_session=core)


class Clients:
    def __init__(self, region: str, endpoint_url: str | None = None) -> None:
        self._region = region
        self._endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}

    def open(self, services: tuple[str, ...] = SERVICES) -> None:
        """Make the clients now (idempotent)."""
        for service in services:
            self.get(service)

    def made(self) -> frozenset[str]:
        return frozenset(self._clients)

    def get(self, service: str) -> Any:
        client = self._clients.get(service)  # made up front: no lock on the query path
        if client is not None:
            return client
        with self._lock:  # a service not opened up front (sessions are not thread-safe)
            client = self._clients.get(service)
            if client is None:
                if self._session is None:
                    self._session = new_session()
                client = self._session.client(  # type: ignore[call-overload]
                    service,
                    region_name=self._region,
                    endpoint_url=self._endpoint_url,
                    config=CLIENT_CONFIG,
                )
                self._clients[service] = client
            return client
