"""The ClickHouse sink: rows from the stages, written in batches by one thread, never lost.

    stage batch ──write()──▶ pending (bounded) ──writer thread──▶ events, contacts, issues,
        ▲                                                       contributions, then the
        └──── acknowledged (offsets may commit) ◀── durable ──── metrics_minute they change

- **metrics_minute** rows come with the board's batches, as the board sums them (``minutes``); a
  flush writes each minute once, its last value, and the minutes the board could not vouch for
  (``touched``: older than a day, or a queue in a rebalance) are summed from ``contributions`` in
  ClickHouse, after the flush's contributions (pipeline/core/facts.py ``board_minutes``).
  While the worker catches up, those re-sums are put off for up to ``resum_seconds``
  (``CCPULSE_SINK_RESUM_SECONDS``, 10 s): the same
  minutes come back flush after flush (FCR outcomes and late surveys of days-old contacts), and
  each re-sum query costs ~100 ms whatever its size. The minutes owed are recorded in ClickHouse
  with the flush (``metrics_minute_owed``), so a crash before the re-sum loses none of them; live
  traffic, a worker that stops and an idle sink re-sum at once, and so does a sink that starts
  (what an earlier writer left owed: pipeline/warehouse.py ``write``).

- **Batched** by size (``flush_rows``) and time (``flush_seconds``, 0.5 s by default). While the
  worker catches up on a backlog (:attr:`Sink.catching_up`, set by the worker from its lag:
  ``CCPULSE_CATCH_UP_LAG`` messages behind or more) a
  flush waits up to ``CATCH_UP_SECONDS`` and ``CATCH_UP_ROWS_FACTOR`` × ``flush_rows``: each
  flush makes one part per table, and fewer, larger inserts cost the embedded engine less CPU
  per row (the writer process on a 1 M-event backlog: 25.5 µs per event with 0.5 s flushes,
  19.9 with 1 s and 60,000 rows, 19.7 with 2 s and 100,000 rows, which also cost ~250 MiB more
  peak RSS than 0.5 s against ~100 MiB for 1 s). Live traffic keeps the short interval.
- **Flush before commit**: a stage holds its batch's Kafka messages until their rows are in
  ClickHouse, so a crash can only replay rows, never lose them (and a replay writes the same
  keys again: every table is a ReplacingMergeTree on its key).
- **Outage**: a failed write is retried, with backoff up to ``max_backoff`` seconds, forever and
  in order; meanwhile rows wait in memory up to ``max_rows``. Past that, ``write()`` waits:
  the stages stop consuming (backpressure) until ClickHouse is back.

Writes run in a thread, so the event loop keeps serving the stages, ``/metrics`` and the
wallboard while ClickHouse works; in the worker the thread hands each flush to the ClickHouse
writer process (pipeline/warehouse_process.py), which does ClickHouse's work off the worker's GIL.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.facts import STAGE_TABLES, Minute, MinuteSums, Row

log = logging.getLogger("ccpulse.sink")
TABLES = (*STAGE_TABLES, "metrics_minute")
CATCH_UP_SECONDS = 1.0  # the flush interval while catching up (at least flush_seconds)
CATCH_UP_ROWS_FACTOR = 3  # flush_rows while catching up: this many times the setting


@dataclass
class SinkBatch:
    """What one processed batch of a stage writes, and what to do once it is durable."""

    rows: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    minutes: MinuteSums = field(default_factory=dict)  # metrics_minute values, as the board sums them
    touched: set[Minute] = field(default_factory=set)  # metrics_minute keys to sum in ClickHouse
    on_durable: Callable[[], None] | None = None

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values()) + len(self.minutes) + len(self.touched)


@dataclass
class SinkHealth:
    rows_written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    backlog_rows: int = 0
    errors: int = 0
    last_success: float = 0.0  # Unix seconds; 0: never
    last_error: str = ""
    failing: bool = False  # the last write failed
    blocked: bool = False  # a stage waits for room (backpressure)
    flushes: int = 0


class FaultSwitch:
    """Fault injection for tests (``CCPULSE_SINK_FAULT_FILE``): while the file exists every write
    fails, as if ClickHouse were unreachable. The embedded engine cannot be made to fail on demand."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def check(self) -> None:
        if self.path and os.path.exists(self.path):
            raise ConnectionError(f"ClickHouse unreachable (fault injected: {self.path} exists)")


class Sink:
    def __init__(
        self,
        open_warehouse: Callable[[], Any],
        *,
        flush_rows: int = 20_000,
        flush_seconds: float = 0.5,
        max_rows: int = 200_000,
        max_backoff: float = 10.0,
        faults: FaultSwitch | None = None,
        query: Callable[[str, str], bytes] | None = None,
        resum_seconds: float = 10.0,
    ) -> None:
        self.open_warehouse = open_warehouse
        self.query = query  # read-only SQL on the same ClickHouse (the /query endpoint)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self.max_backoff = max_backoff
        self.resum_seconds = resum_seconds
        self.faults = faults or FaultSwitch(None)
        self.health = SinkHealth()
        self._pending: list[SinkBatch] = []
        self._pending_rows = 0
        self._oldest = 0.0
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()  # set when a write completes (room in the backlog)
        self._waiting_writers = 0
        self._flushes_unacknowledged = 0  # flushes taken whose acknowledgements have not run yet
        self._version = 0
        self._warehouse: Any = None
        self.catching_up = False  # set by the worker from its stages' lag (see the module's text)
        # monotonic time of the oldest re-sum put off, if any; at start, what an earlier writer may
        # have left owed (a crash): the first idle moment settles it
        self._owed_since: float | None = -math.inf

    # ------------------------------------------------------------------ the stages' side
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        # The stages may have written (and be waiting for room) before this runs: keep their Event.
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="clickhouse-sink", daemon=True)
        self._thread.start()

    async def write(self, batch: SinkBatch) -> None:
        """Queue a batch; waits while the backlog is full (the stage stops consuming meanwhile)."""
        if not len(batch):
            # Nothing to write, but its messages must not be acknowledged before those of earlier
            # batches still on their way (Faust may commit past one unacknowledged message): it
            # waits its turn behind them, unless nothing is on its way.
            with self._lock:
                if self._pending or self._flushes_unacknowledged:
                    if not self._pending:
                        self._oldest = time.monotonic()
                    self._pending.append(batch)
                    self._lock.notify()
                    return
            if batch.on_durable:
                batch.on_durable()
            return
        waiting = False
        try:
            while True:
                with self._lock:
                    if self._pending_rows == 0 or self._pending_rows + len(batch) <= self.max_rows:
                        if not self._pending:
                            self._oldest = time.monotonic()
                        self._pending.append(batch)
                        self._pending_rows += len(batch)
                        self.health.backlog_rows = self._pending_rows
                        self._lock.notify()
                        return
                    if not waiting:
                        waiting = True
                        self._waiting_writers += 1
                        self.health.blocked = True
                    self._room.clear()
                try:  # woken when a write completes; the timeout only guards against a missed wake-up
                    await asyncio.wait_for(self._room.wait(), 1.0)
                except TimeoutError:
                    pass
        finally:
            if waiting:
                self._waiting_writers -= 1
                self.health.blocked = self._waiting_writers > 0

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is pending (for up to ``timeout`` seconds), then stop the thread."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the writer thread
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopping:
                    age = time.monotonic() - self._oldest if self._pending else 0.0
                    rows, seconds = self._flush_at()
                    if self._pending and (self._pending_rows >= rows or age >= seconds):
                        break
                    if not self._pending and self._owed_since is not None and self._settle_now():
                        break  # nothing to write, but re-sums owed: a flush of no rows settles them
                    idle = self.flush_seconds if self._owed_since is not None else None
                    self._lock.wait(timeout=seconds - age if self._pending else idle)
                if self._stopping and not self._pending and self._owed_since is None:
                    break
                taken, self._pending = self._pending, []
                self._oldest = time.monotonic()
                self._flushes_unacknowledged += 1
            if not self._write_until_done(taken) and self._stopping:
                break
        if self._warehouse is not None:
            self._warehouse.close()

    def _settle_now(self) -> bool:
        """Whether this flush re-sums the minutes touched (and those owed), or puts them off."""
        if not self.catching_up or self._stopping:
            return True
        return self._owed_since is not None and time.monotonic() - self._owed_since >= self.resum_seconds

    def _flush_at(self) -> tuple[int, float]:
        """(rows, seconds): a flush is due when this many rows wait, or the oldest waited this long."""
        if self.catching_up:
            rows = min(self.flush_rows * CATCH_UP_ROWS_FACTOR, max(self.flush_rows, self.max_rows // 2))
            return rows, max(self.flush_seconds, CATCH_UP_SECONDS)
        return self.flush_rows, self.flush_seconds

    def _write_until_done(self, taken: list[SinkBatch]) -> bool:
        """Write, retrying until it succeeds (True) or the sink stops with ClickHouse down (False)."""
        backoff = 0.1
        while True:
            try:
                self._write(taken)
                break
            except Exception as failure:  # noqa: BLE001 - any failure is retried; the rows are kept
                self.health.errors += 1
                self.health.failing = True
                self.health.last_error = f"{type(failure).__name__}: {failure}"[:500]
                log.warning("ClickHouse write of %d rows failed (%s); retrying in %.1f s",
                            sum(len(b) for b in taken), self.health.last_error, backoff)  # fmt: skip
                self._drop_connection()
                with self._lock:
                    if self._stopping and time.monotonic() > self._stop_deadline():
                        log.error("stopping with %d rows unwritten: they are written again after the restart "
                                  "(their messages were not committed)", sum(len(b) for b in taken))  # fmt: skip
                        return False
                    self._lock.wait(timeout=backoff)
                backoff = min(self.max_backoff, backoff * 2)
        done = sum(len(b) for b in taken)
        with self._lock:
            self._pending_rows -= done
            self.health.backlog_rows = self._pending_rows
        self.health.failing = False
        self.health.last_success = time.time()
        self.health.flushes += 1
        callbacks = [b.on_durable for b in taken if b.on_durable is not None]
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._durable, callbacks)
        else:
            self._durable(callbacks)
        return True

    _stop_deadline_at = 0.0

    def _stop_deadline(self) -> float:
        if not self._stop_deadline_at:
            self._stop_deadline_at = time.monotonic() + 5.0
        return self._stop_deadline_at

    def _durable(self, callbacks: list[Callable[[], None]]) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001
                log.exception("acknowledging a written batch failed")
        with self._lock:
            self._flushes_unacknowledged -= 1
        self._room.set()

    def _write(self, taken: list[SinkBatch]) -> None:
        self.faults.check()
        if self._warehouse is None:
            self._warehouse = self.open_warehouse()
        merged: dict[str, list[Row]] = {}
        minutes: MinuteSums = {}
        touched: set[Minute] = set()
        for batch in taken:  # in the order the stages wrote them: a minute's last value wins
            for table, rows in batch.rows.items():
                if rows:
                    merged.setdefault(table, []).extend(rows)
            minutes.update(batch.minutes)
            touched |= batch.touched
        for minute in touched & minutes.keys():
            del minutes[minute]  # summed in ClickHouse after this flush's contributions: the latest there is
        settle = self._settle_now()
        written = self._warehouse.write(merged, minutes, touched, self._next_version(), settle)
        for table, count in written.items():
            self.health.rows_written[table] += count
        if settle:
            self._owed_since = None
        elif touched and self._owed_since is None:
            self._owed_since = time.monotonic()

    def _next_version(self) -> int:
        # the least version of a flush's metrics_minute rows (the warehouse takes the clock after
        # its inserts if later): clock-based, it keeps growing across restarts and hand-overs
        self._version = max(time.time_ns() // 1000, self._version + 1)
        return self._version

    def _drop_connection(self) -> None:
        if self._warehouse is not None:
            try:
                self._warehouse.close()
            except Exception:  # noqa: BLE001
                pass
            self._warehouse = None
