"""Durations as people write them in a collaboration file or a fault hint: 500ms, 2s, 1.5m, 1h."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")


def parse_duration(text: str | float | int) -> float:
    """Seconds in `text` (a bare number is seconds). Raises ValueError on anything else."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    match = _DURATION.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (write e.g. 500ms, 2s, 1m)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]
