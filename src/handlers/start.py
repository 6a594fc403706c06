"""Start function: a spec uploaded or deleted (its schedule first: `crq.schedule_sync`, which
says whether an upload also runs now), or a schedule naming a spec (`crq.starter.start_run`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from crq.adapters import build_pipeline, schedule_deps_for
from crq.events import SpecDeleted, SpecUploaded, parse_start_event
from crq.ports import Pipeline
from crq.schedule_sync import sync_schedule
from crq.settings import Settings
from crq.starter import start_run

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    """The collaborators, built once per cold start (a missing setting fails here, by name)."""
    return build_pipeline(Settings.from_env(), metrics)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    trigger = parse_start_event(event)
    synced = None
    if isinstance(trigger, SpecUploaded | SpecDeleted):  # the spec's schedule first
        synced = sync_schedule(trigger, schedule_deps_for(pipeline()))
        if isinstance(trigger, SpecDeleted) or not synced.run_now:
            logger.info("start handled", extra=synced.as_dict())
            return synced.as_dict()
    result = start_run(trigger, pipeline()).as_dict()
    if synced is not None and synced.outcome not in ("ignored", "unscheduled"):
        result["schedule"] = synced.outcome
    logger.info("start handled", extra=result)
    return result
