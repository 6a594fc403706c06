"""EventBridge Scheduler for the track schedule, played by a thread.

The deployed schedule fires once a minute; the sandbox fires it every `tick` seconds, so a lost
status event is caught within seconds. Each tick reads the schedule back from the Scheduler
endpoint: its input is the template's, and a schedule a user disabled does not fire.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from crq_local.sandbox.lambda_runtime import Invocation, LambdaRuntime
from crq_local.sandbox.worker import Worker


class ScheduleTicker(Worker):
    def __init__(
        self,
        runtime: LambdaRuntime,
        function: str,
        event: Callable[[], Any],
        tick_seconds: float,
        on_tick: Callable[[Invocation], None],
    ) -> None:
        """`event()` gives the input of one firing, or None when the schedule is disabled."""
        super().__init__(f"schedule-{function}")
        self._runtime = runtime
        self._function = function
        self._event = event
        self._tick = tick_seconds
        self._on_tick = on_tick
        # Passes completed (schedule read, and fired if enabled): lets a caller wait for the
        # ticker to see a change, rather than guess how long that takes.
        self.passes = 0

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                event = self._event()
            except (BotoCoreError, ClientError):
                event = None  # the schedule was deleted, or the endpoint is stopping: no firing
            if event is not None:
                self._on_tick(self._runtime.invoke(self._function, event))
            self.passes += 1
