"""Tells the operator when the worker's event loop is blocked, and where.

Every stage, the ingest consumer's heartbeats and the /metrics page share one asyncio loop; code
that holds it for seconds delays all of them, and past the group session (10 s) the broker takes
the input partitions away. A watcher thread posts a no-op to the loop every ``interval``; when
none has run for ``threshold`` seconds it logs, once per block, where the loop's thread is (its
stack, taken while it is blocked), and when the loop answers again, how long the block lasted.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger("ccpulse.loop")

BLOCKED_SECONDS = 2.0  # the ingest consumer heartbeats every 3 s; its session ends after 10 s


class LoopWatch(threading.Thread):
    """Start it from the loop's own thread (it records which thread that is)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float = BLOCKED_SECONDS,
                 interval: float = 0.25) -> None:  # fmt: skip
        super().__init__(name="loop-watch", daemon=True)
        self.loop, self.threshold, self.interval = loop, threshold, interval
        self.loop_thread = threading.get_ident()
        self.answered = time.monotonic()
        self.finished = threading.Event()

    def _answer(self) -> None:
        self.answered = time.monotonic()

    def run(self) -> None:
        blocked_since: float | None = None
        while not self.finished.wait(self.interval):
            if self.loop.is_closed():
                return
            now = time.monotonic()
            silent = now - self.answered
            if silent >= self.threshold and blocked_since is None:
                blocked_since = self.answered
                frame = sys._current_frames().get(self.loop_thread)
                where = "".join(traceback.format_stack(frame, limit=12)) if frame is not None else "(unknown)\n"
                log.warning("event loop blocked for %.1f s so far (stages, heartbeats and /metrics wait); it is "
                            "in:\n%s", silent, where.rstrip())  # fmt: skip
            elif silent < self.threshold and blocked_since is not None:
                log.warning("event loop answers again after a block of %.1f s", self.answered - blocked_since)
                blocked_since = None
            try:
                self.loop.call_soon_threadsafe(self._answer)
            except RuntimeError:  # the loop closed meanwhile
                return

    def stop(self) -> None:
        self.finished.set()
