"""Models the functions use from several threads are built when their module is imported.

pydantic builds a `defer_build` model on first use, and that build is not thread-safe: two
threads validating the same model for the first time can see it half built (a valid spec came
back SPEC_REJECTED with every key "unknown field", and `__pydantic_core_schema__` went missing).
The track pass validates queries, runs, notifications and specs on thread pools, so their
models are built at import, which Python's import lock serialises. Only models a handler parses
on its own thread (the triggers) stay deferred.
"""

from __future__ import annotations

import importlib
import inspect

import pytest
from pydantic import BaseModel

THREAD_SHARED = ["crq.spec.model", "crq.ledger", "crq.ports", "crq.notification"]


@pytest.mark.parametrize("module_name", THREAD_SHARED)
def test_every_model_is_complete_once_imported(module_name: str) -> None:
    module = importlib.import_module(module_name)
    models = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseModel)
        and value.__module__ == module_name
    ]
    assert models, f"{module_name} defines no models: the test would prove nothing"
    deferred = [m.__name__ for m in models if not m.__pydantic_complete__]
    assert not deferred, f"{module_name}: built on first use, racing across threads: {deferred}"
