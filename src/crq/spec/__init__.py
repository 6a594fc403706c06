"""The spec file: a StartProtectedQuery request, verbatim, plus a few pipeline keys.

`load_spec(data, source)` turns a spec file's bytes into a `Spec` or raises `SpecInvalid` with
every error found (file, field path, reason). `render_request(spec, context)` turns a Spec into
the exact keyword arguments of `start_protected_query` for one run, checked again after its
placeholders are rendered. `redacted_request` hides the sensitive values before a request is
stored or shown.

The compilation chain, one module per step:
    safe_load  bytes -> plain data, safely (YAML/JSON hazards, size, encoding)
    apimodel   the Clean Rooms model's constraints, from botocore's service model
    render     the placeholder grammar ({{ run_date - 7d }})
    model      the pipeline keys and the typed request (pydantic)
    request    placeholders' places, rendering, and the checks of the rendered request
    problems   SpecInvalid, and pydantic's errors in crq's words
    load       the validation pipeline: load_spec
    names      a spec's default name, and one live spec per name
    limits     the size cap, importable without the YAML loader

The names below are imported on first use (PEP 562), not with the package: `crq.spec.names`
and `crq.spec.limits` are imported at cold start, and the rest of the chain is not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crq.spec.load import load_spec
    from crq.spec.model import RESERVED_NOTIFY_ATTRIBUTES, Spec, SpecSchedule
    from crq.spec.problems import SpecInvalid
    from crq.spec.render import RenderContext
    from crq.spec.request import redacted_request, render_request

# Public name -> the module of the chain that defines it.
_HOME = {
    "load_spec": "load",
    "RESERVED_NOTIFY_ATTRIBUTES": "model",
    "Spec": "model",
    "SpecSchedule": "model",
    "SpecInvalid": "problems",
    "RenderContext": "render",
    "redacted_request": "request",
    "render_request": "request",
}

__all__ = [
    "RESERVED_NOTIFY_ATTRIBUTES",
    "RenderContext",
    "Spec",
    "SpecInvalid",
    "SpecSchedule",
    "load_spec",
    "redacted_request",
    "render_request",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
