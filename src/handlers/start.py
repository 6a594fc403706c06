"""Start function: a spec uploaded under the specs prefix, or a schedule naming a spec.

Parses the event, calls `crq.starter.start_run`, returns a small summary. Events that are not
crq's (another bucket or prefix, a folder marker, a delete) are ignored by the use case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from crq.adapters import build_pipeline
from crq.events import parse_start_event
from crq.ports import Pipeline
from crq.settings import Settings
from crq.starter import start_run

logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    """The collaborators, built once per cold start (a missing setting fails here, by name)."""
    return build_pipeline(Settings.from_env(), metrics)


def _handle(event: dict[str, Any], wiring: Pipeline) -> dict[str, str]:
    trigger = parse_start_event(event)
    result = start_run(trigger, wiring)
    logger.info("start handled", extra=result.as_dict())
    return result.as_dict()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return _handle(event, pipeline())


def handler_for(environ: Mapping[str, str]) -> Callable[[dict[str, Any], LambdaContext], Any]:
    """This handler with its collaborators built from `environ`, not os.environ: for a host running
    several functions in one process (the sandbox), which must not change the process environment
    while other threads run. Lambda uses `handler`."""
    wiring = build_pipeline(Settings.from_env(environ), metrics)
    return logger.inject_lambda_context(clear_state=True)(
        metrics.log_metrics(lambda event, context: _handle(event, wiring))
    )
