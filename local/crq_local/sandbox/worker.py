"""A background loop on one daemon thread that stops when asked (the sandbox's pollers)."""

from __future__ import annotations

import threading


class Worker:
    """Subclasses implement `_run`, looping until `self._stop` is set."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to end without waiting (stop several workers, then join each)."""
        self._stop.set()

    def stop(self) -> None:
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError
