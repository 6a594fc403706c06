"""`statistics.billedResourceUtilization.units`: CRPU-hours, the engine's approximation.

units = CRPUs x hours spent STARTED, where CRPUs = workers x CRPUs per worker type. A SPARK
query without `computeConfiguration` counts 16 x CR.1X; CLEAN_ROOMS_SQL sizes itself on AWS,
so the engine counts a fixed 4 CRPUs. Not AWS pricing: a number that behaves like it.
"""

from __future__ import annotations

from typing import Any

CRPU_PER_WORKER = {"CR.1X": 1.0, "CR.4X": 4.0, "CR.8X": 8.0}
DEFAULT_WORKER = {"type": "CR.1X", "number": 16}
CLEAN_ROOMS_SQL_CRPUS = 4.0


def crpus(analytics_engine: str, compute_configuration: dict[str, Any] | None) -> float:
    if analytics_engine == "CLEAN_ROOMS_SQL":
        return CLEAN_ROOMS_SQL_CRPUS
    worker = {**DEFAULT_WORKER, **(compute_configuration or {}).get("worker", {})}
    return CRPU_PER_WORKER[worker["type"]] * worker["number"]


def statistics(total_seconds: float, running_seconds: float, units_crpus: float) -> dict[str, Any]:
    return {
        "totalDurationInMillis": int(total_seconds * 1000),
        "billedResourceUtilization": {"units": round(units_crpus * running_seconds / 3600.0, 6)},
    }
