"""Fixtures of the reliability suite: fault injectors bound to one test's stack.

Each depends on `functions` (tests/integration/conftest.py), so it acts on the session crq's
adapters use in that test, and is gone with it: nothing is shared between tests or files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from reliability_support import (
    ActiveQueries,
    CleanRoomsCalls,
    Clock,
    StartFaults,
)


@pytest.fixture
def clock(functions: Any) -> Iterator[Clock]:
    """Both handlers' clock, which the test moves forward (the real collaborators otherwise)."""
    from handlers import start, track

    moved = Clock()
    # Its own MonkeyPatch: undone before `functions` clears the handlers' caches.
    with pytest.MonkeyPatch.context() as patch:
        for module in (start, track):
            built = module.collaborators
            patch.setattr(
                module,
                "collaborators",
                lambda built=built: dataclasses.replace(built(), clock=moved),
            )
        yield moved


@pytest.fixture
def calls(functions: Any) -> CleanRoomsCalls:
    return CleanRoomsCalls().install()


@pytest.fixture
def start_faults(functions: Any) -> StartFaults:
    return StartFaults().install()


@pytest.fixture
def active(pipeline_stack: Any, functions: Any) -> ActiveQueries:
    return ActiveQueries(pipeline_stack.engine).install()
