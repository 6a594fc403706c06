"""Start function: a spec uploaded or deleted (schedule first), or a schedule naming a spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache, partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from crq.adapters import build_collaborators, schedule_deps_for
from crq.ports import Collaborators
from crq.settings import Settings
from crq.triggers import parse_start_event
from crq.uploads import sync_and_start

logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def collaborators() -> Collaborators:
    return build_collaborators(Settings.from_env(), metrics)


def _handle(event: dict[str, Any], deps: Collaborators) -> dict[str, Any]:
    result = sync_and_start(parse_start_event(event), deps, partial(schedule_deps_for, deps))
    logger.info("start handled", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _handle(event, collaborators())


def handler_for(environ: Mapping[str, str]) -> Callable[[dict[str, Any], LambdaContext], Any]:
    # The sandbox's: collaborators built from `environ`, not os.environ. Lambda uses `handler`.
    deps = build_collaborators(Settings.from_env(environ), metrics)
    return logger.inject_lambda_context(clear_state=True)(
        metrics.log_metrics(lambda event, context: _handle(event, deps))
    )
