"""How a run is stopped: Ctrl-C and SIGTERM (`StopSignals`), and its --time-limit
(`TimeLimitReached`). Either sends the trials in flight back to the queue."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class TimeLimitReached(BaseException):
    """The run's --time-limit has passed: stop as on Ctrl-C. A BaseException, so that the
    handlers for training errors do not take it for one."""


class StopSignals:
    """Ctrl-C and SIGTERM, as `run` handles them. Python raises KeyboardInterrupt in the main
    thread wherever it is; inside a storage call that leaves the call's session
    mid-transaction (Optuna rolls back on exceptions, and KeyboardInterrupt is none) and, on
    SQLite, the file locked against the requeue that follows. So while a storage call is
    `held`, a stop waits for it to end (it raises just after); a second stop meanwhile does
    not wait."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False

    def handle(self, signum: int, frame: object) -> None:
        if self.depth and not self.pending:
            self.pending = True
            return
        self.pending = False
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals interrupt the main thread only
            return
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """SIGINT and SIGTERM go to `handle` meanwhile (from the main thread only, where
        Python lets a handler be set)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
