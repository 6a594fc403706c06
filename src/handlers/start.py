"""Start function: a spec uploaded or deleted (schedule first), or a schedule naming a spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from crq.adapters import build_pipeline, schedule_deps_for
from crq.events import SpecDeleted, SpecUploaded, parse_start_event
from crq.ports import Pipeline
from crq.schedule_sync import sync_schedule
from crq.settings import Settings
from crq.starter import start_run

logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    return build_pipeline(Settings.from_env(), metrics)


def _handle(event: dict[str, Any], wiring: Pipeline) -> dict[str, Any]:
    trigger = parse_start_event(event)
    synced = None
    if isinstance(trigger, SpecUploaded | SpecDeleted):  # the spec's schedule first
        synced = sync_schedule(trigger, schedule_deps_for(wiring))
    if synced is not None and (isinstance(trigger, SpecDeleted) or not synced.run_now):
        result = synced.as_dict()
    elif not isinstance(trigger, SpecDeleted):  # (a deletion always stops above)
        result = start_run(trigger, wiring).as_dict()
        if synced is not None and synced.outcome not in ("ignored", "unscheduled"):
            result["schedule"] = synced.outcome
    logger.info("start handled", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _handle(event, pipeline())


def handler_for(environ: Mapping[str, str]) -> Callable[[dict[str, Any], LambdaContext], Any]:
    # The sandbox's: collaborators built from `environ`, not os.environ. Lambda uses `handler`.
    wiring = build_pipeline(Settings.from_env(environ), metrics)
    return logger.inject_lambda_context(clear_state=True)(
        metrics.log_metrics(lambda event, context: _handle(event, wiring))
    )
