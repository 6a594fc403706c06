"""The engine core: one collaboration file's world, its queries, and the API that answers.

`Engine` wires the parts and is what every front door holds: the world (world.py), the
operations (operations.py), the runner of queries (runner.py) and the AWS clients (aws.py).
`handle(operation, params)` answers one request. The front doors (wsgi.py, inprocess.py,
server.py) and the test controls (testing.py) are functions of their own modules that take an
engine; this module never imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crq.spec.apimodel import check_shape, service_model

from .aws import Clients
from .config import EngineConfig, load_config
from .errors import ThrottlingException, UnknownOperationException, invalid_fields
from .faults import Throttle
from .operations import Operations
from .queries import Received
from .runner import Runner
from .schemas import Schemas
from .timings import Timings
from .world import World

__all__ = ["Engine", "Received"]


class Engine:
    """The local Clean Rooms engine. See the package docstring for how to use it."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        timings: Timings | None = None,
        members_dir: str | Path | None = None,
        aws_endpoint_url: str | None = None,
    ) -> None:
        """`members_dir` overrides the file's `membersDir`; `aws_endpoint_url`, when given, is
        where the engine's S3 and EventBridge clients go instead of what the environment says."""
        self.config = config
        self.timings = timings or Timings.fast()
        self.world = World(config)
        if members_dir is not None:
            self.members_dir = Path(members_dir)
        elif config.membersDir:
            self.members_dir = config.resolve(config.membersDir)
        else:
            self.members_dir = Path.cwd() / ".crq" / "engine" / "members"
        self.clients = Clients(config.region, aws_endpoint_url)
        self.throttling = Throttle(
            config.faults, config.limits.requestsPerSecond, config.limits.burst
        )
        self.runner = Runner(config, self.world, self.timings, self.members_dir, self.clients)
        self.api = Operations(self.world, self.runner, Schemas(self.world, config))

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Engine:
        return cls(load_config(path), **kwargs)

    @property
    def operations(self) -> frozenset[str]:
        """The names of the operations the engine implements."""
        return frozenset(self.api.table)

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Answer one API request (`params`: every input member, from URI, query and body).
        Raises ApiError for an error answer."""
        answer = self.api.table.get(operation)
        if answer is None:
            raise UnknownOperationException(
                f"The local Clean Rooms engine does not implement {operation}"
            )
        reason = self.throttling.check(operation)
        if reason:
            raise ThrottlingException(reason)
        input_shape = service_model().operation_model(operation).input_shape
        errors = check_shape(input_shape.name, params) if input_shape is not None else []
        if errors:
            raise invalid_fields(errors)
        return answer(params)

    def open(self) -> None:
        """Make the S3 and EventBridge clients now, from the environment as it is (a front door
        calls this when it opens, after any `mock_aws` has started)."""
        self.clients.open()

    @property
    def received(self) -> list[Received]:
        """The StartProtectedQuery requests accepted, oldest first."""
        return self.runner.received

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every query thread and the event publisher. Queries keep their last status."""
        self.runner.shutdown(timeout)
