"""The engine's boto3 clients (S3 for results and S3 tables, EventBridge for events).

They are made on first use, after any `mock_aws` has started, from the environment (or an
explicit endpoint), and shared by the engine's threads: clients are thread-safe once made,
sessions are not, so creation happens under a lock.
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

    def get(self, service: str) -> Any:
        with self._lock:
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
