"""Track function: the backstop schedule, or an `aws.cleanrooms` status event (a wake-up).

Parses the event, calls `crq.tracker.track_in_flight`, returns a small summary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from crq.adapters import build_collaborators
from crq.deadline import Deadline
from crq.ports import Collaborators
from crq.settings import Settings
from crq.tracker import track_in_flight
from crq.triggers import parse_track_event

logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def collaborators() -> Collaborators:
    """The collaborators, built once per cold start (a missing setting fails here, by name)."""
    return build_collaborators(Settings.from_env(), metrics)


def _handle(event: dict[str, Any], context: LambdaContext, deps: Collaborators) -> dict[str, Any]:
    request = parse_track_event(event)
    # Stop taking new work before Lambda's timeout; what is left waits for the next tick.
    deadline = Deadline.of(context, deps.settings.track_time_reserve)
    summary = track_in_flight(deps, request, deadline)
    logger.info("track handled", extra=summary.as_dict())
    return summary.as_dict()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _handle(event, context, collaborators())


def handler_for(environ: Mapping[str, str]) -> Callable[[dict[str, Any], LambdaContext], Any]:
    """This handler with its collaborators built from `environ`, not os.environ: for a host running
    several functions in one process (the sandbox), which must not change the process environment
    while other threads run. Lambda uses `handler`."""
    deps = build_collaborators(Settings.from_env(environ), metrics)
    return logger.inject_lambda_context(clear_state=True)(
        metrics.log_metrics(lambda event, context: _handle(event, context, deps))
    )
