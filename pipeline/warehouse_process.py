"""ClickHouse in a process of its own: the sink's writes and the ``/query`` endpoint's reads.

    worker (stages, event loop) ──rows, msgpack──▶ ClickHouse writer process ──▶ ClickHouse
         sink thread ◀──── rows written, or why not ◀───┘   (clickhouse-connect, chDB)

Why a process: the worker is bound by Python's GIL (docs/performance.md). In a thread, the sink's
Python work — clickhouse-connect turning rows into columns — held the GIL the stages need, and
the embedded engine's threads slowed the stages beside them. Handing a flush over costs the
worker one msgpack encoding of its rows (:func:`pack_write`; C code: 1.1 µs per input event
against 4.9 for ``pickle``, measured on bench.passes' rows).

Exactness is unchanged: a batch's messages are acknowledged only after the writer process has
answered that its rows are in ClickHouse. If the writer process dies, the sink's write fails, is
retried in a new writer process, and the rows are written again (every table is a
ReplacingMergeTree on its key). The writer process exits within 0.2 s of its worker, even a
worker killed by SIGKILL, so a killed worker never leaves the embedded engine held.
"""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence, Set
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from pipeline import console
from pipeline.collector import tune_garbage_collection
from pipeline.core.facts import Minute, MinuteSums, Row
from pipeline.warehouse import Migration, Warehouse, WarehouseError, connect

log = logging.getLogger("ccpulse.clickhouse")
START_SECONDS = 120.0  # to import ClickHouse's client, open the engine and migrate
PARENT_CHECK_SECONDS = 0.2
WRITE_SECONDS = 300.0  # a flush not answered by then: the writer process is hung, and is replaced
QUERY_SECONDS = 120.0  # ClickHouse stops a read-only query that runs longer (CCPULSE_QUERY_SECONDS)
# A query not answered QUERY_SECONDS + this after it was asked: the writer process is hung (ClickHouse
# would have stopped the query), and is replaced. The margin covers the engine call a write may be in
# (one insert or one re-sum chunk: well under a second) before the query gets its turn.
QUERY_GRACE_SECONDS = 30.0
# The embedded engine's allocator (chDB's jemalloc) keeps freed pages 5 s before it gives them back
# to the system. A writer catching up frees and allocates all the time (inserts, merges, re-sums), so
# its RSS stood ~60 MiB above what it used. 1 s, set before the engine loads; an operator's
# JE_MALLOC_CONF wins (docs/operations.md, "The writer's memory").
ALLOCATOR = "dirty_decay_ms:1000"


class WriterGone(ConnectionError):
    """The writer process died (killed, out of memory): the write is retried in a new one."""


class WarehouseProcess:
    """The parent's side: ``write`` and ``query`` as a :class:`Warehouse` has them, done by a
    child process. One write and one query may run at once (each has its own pipe)."""

    def __init__(self, url: str, database: str, migrations: Sequence[Migration], log_level: str = "INFO",
                 write_seconds: float = WRITE_SECONDS, query_seconds: float = QUERY_SECONDS,
                 query_grace: float = QUERY_GRACE_SECONDS) -> None:  # fmt: skip
        self.url = url
        self.write_seconds = write_seconds
        self.query_seconds = query_seconds
        self.query_grace = query_grace
        self.database = database
        self.migrations = list(migrations)
        self.log_level = log_level
        self._context = multiprocessing.get_context("spawn")  # a fork would copy the event loop's threads
        self._process: Any = None
        self._writes: Connection | None = None
        self._queries: Connection | None = None
        self._write_turn = threading.Lock()
        self._query_turn = threading.Lock()
        self._starting = threading.Lock()

    # ------------------------------------------------------------------ the parent's side
    def start(self) -> None:
        """Start the writer process; with the embedded engine, wait until it holds the engine and
        the schema is migrated (a wrong path, or an engine held by another process, fails here)."""
        with self._starting:
            if self._process is not None and self._process.is_alive():
                return
            self._reap()
            writes, their_writes = self._context.Pipe()
            queries, their_queries = self._context.Pipe()
            process = self._context.Process(
                target=serve,
                args=(
                    their_writes,
                    their_queries,
                    self.url,
                    self.database,
                    self.migrations,
                    self.log_level,
                    os.getpid(),
                    self.query_seconds,
                ),
                name="ccpulse-clickhouse",
                daemon=True,
            )
            process.start()
            their_writes.close()
            their_queries.close()
            self._process, self._writes, self._queries = process, writes, queries
            if not writes.poll(START_SECONDS):
                self._reap()
                raise WarehouseError(f"the ClickHouse writer process did not start in {START_SECONDS:.0f} s")
            try:
                status, detail = writes.recv()
            except EOFError:
                self._reap()
                raise WriterGone("the ClickHouse writer process exited as it started (see its log above)") from None
            if status != "ready":
                self._reap()
                raise WarehouseError(detail)
            log.info("ClickHouse writer process %d started%s", process.pid,
                     f"; schema: applied {', '.join(detail)}" if detail else "")  # fmt: skip

    def write(self, rows: Mapping[str, Sequence[Row]], minutes: MinuteSums, touched: Set[Minute],
              version: int, settle: bool = True) -> dict[str, int]:  # fmt: skip
        """:meth:`Warehouse.write` in the writer process (started again first if it died)."""
        with self._write_turn:
            self._ensure_running()
            assert self._writes is not None
            request = ("write", pack_write(rows, minutes, touched, version, settle))
            reply = self._ask(self._writes, request, self.write_seconds)
        status, detail = reply
        if status != "ok":
            raise WarehouseError(detail)
        written: dict[str, int] = detail
        return written

    def query(self, sql: str, output: str = "jsonl") -> bytes:
        """:meth:`Warehouse.query` on a read-only client in the writer process. ClickHouse stops a
        query past ``query_seconds``; no answer ``query_grace`` later: the writer process is hung
        (an idle worker writes nothing, so no write would find out), and it is replaced."""
        with self._query_turn:
            self._ensure_running()
            assert self._queries is not None
            status, detail = self._ask(self._queries, ("query", sql, output), self.query_seconds + self.query_grace)
        if status != "ok":
            raise WarehouseError(detail)
        result: bytes = detail
        return result

    def close(self) -> None:
        """After a failed write: the writer process has already dropped its connection to
        ClickHouse (it opens a new one for the next write); only a dead one is cleaned up."""
        if self._process is not None and not self._process.is_alive():
            with self._starting:
                self._reap()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the writer process finish what it is doing and exit (it then releases the engine)."""
        process = self._process
        if process is None:
            return
        try:
            with self._write_turn:
                if self._writes is not None:
                    self._writes.send(("stop",))
        except OSError:
            pass
        process.join(timeout)
        if process.is_alive():
            log.warning("the ClickHouse writer process did not stop in %.0f s; killing it", timeout)
            process.kill()
            process.join(5)
        self._reap()

    def _ensure_running(self) -> None:
        if self._process is None or not self._process.is_alive():
            self.start()  # again, if it died

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def _ask(self, pipe: Connection, request: tuple[Any, ...], seconds: float | None = None) -> tuple[str, Any]:
        try:
            pipe.send(request)
            answered = seconds is None or pipe.poll(seconds)
            reply: tuple[str, Any] = pipe.recv() if answered else ("", None)
        except (EOFError, OSError) as lost:
            code = self._process.exitcode if self._process is not None else None
            raise WriterGone(f"the ClickHouse writer process died (exit code {code}): {lost!r}") from lost
        if not answered:
            # hung (a stuck engine, a stopped process): replaced, and the flush written again (if
            # it did land meanwhile, it is written twice, which the tables absorb)
            pid = self._process.pid if self._process is not None else None
            with self._starting:
                self._reap()
            raise WriterGone(f"the ClickHouse writer process {pid} did not answer in {seconds:.0f} s; "
                             "it was killed and is replaced")  # fmt: skip
        return reply

    def _reap(self) -> None:
        for pipe in (self._writes, self._queries):
            if pipe is not None:
                pipe.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
        self._process = self._writes = self._queries = None


# ---------------------------------------------------------------------- the writer process
def serve(writes: Connection, queries: Connection, url: str, database: str, migrations: list[Migration],
          log_level: str, worker_pid: int, query_seconds: float = QUERY_SECONDS) -> None:  # fmt: skip
    """The writer process: one write at a time from ``writes``, one query at a time from
    ``queries`` (in a thread; the embedded engine takes one call at a time, see Warehouse)."""
    _die_with_parent(worker_pid)
    os.environ.setdefault("JE_MALLOC_CONF", ALLOCATOR)  # read once, when the engine's library loads
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle; it stops us in turn
    console.configure(log_level.lower(), verbose=False)
    writer: Warehouse | None = None
    applied: list[str] = []
    if url.startswith("chdb:"):  # the embedded engine: opened now, so that a wrong path fails the start
        try:
            writer, applied = _open_writer(url, database, migrations)
        except Exception as problem:  # noqa: BLE001
            writes.send(("failed", f"{type(problem).__name__}: {problem}"))
            return
    writes.send(("ready", applied))
    threading.Thread(target=_answer_queries, args=(queries, url, database, query_seconds), name="queries",
                     daemon=True).start()  # fmt: skip
    tune_garbage_collection()  # as the worker's: a flush decodes into ~60,000 lists (pipeline/collector.py)
    while True:
        try:
            request = writes.recv()
        except EOFError:  # the worker is gone
            break
        if request[0] == "stop":
            break
        try:
            rows, minutes, touched, version, settle = unpack_write(request[1])
            if writer is None:
                writer, applied = _open_writer(url, database, migrations)
                if applied:
                    log.info("ClickHouse schema: applied %s", ", ".join(applied))
            writes.send(("ok", writer.write(rows, minutes, touched, version, settle)))
        except Exception as problem:  # noqa: BLE001 - the sink logs it and retries
            writes.send(("failed", f"{type(problem).__name__}: {problem}"))
            if writer is not None:
                writer.close()  # a new connection for the next write
            writer = None
    if writer is not None:
        writer.close()


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def pack_write(rows: Mapping[str, Sequence[Row]], minutes: MinuteSums, touched: Set[Minute], version: int,
               settle: bool = True) -> bytes:  # fmt: skip
    """A flush for the writer process: the rows per table, the ``metrics_minute`` sums as
    (queue, channel, minute, values or None), the minutes to re-sum (msgpack has no tuple keys)
    and whether to re-sum them now (:meth:`Warehouse.write`)."""
    sums = [(*key, value) for key, value in minutes.items()]
    return _encoder.encode((dict(rows), sums, list(touched), version, settle))


def unpack_write(payload: bytes) -> tuple[dict[str, list[Row]], MinuteSums, set[Minute], int, bool]:
    """:func:`pack_write`'s arguments again (rows as lists: the writer takes them column by column)."""
    rows, sums, touched, version, settle = _decoder.decode(payload)
    minutes: MinuteSums = {(q, c, m): None if values is None else tuple(values) for q, c, m, values in sums}
    return rows, minutes, {(q, c, m) for q, c, m in touched}, version, settle


def _open_writer(url: str, database: str, migrations: list[Migration]) -> tuple[Warehouse, list[str]]:
    """A client for the sink's writes, with the schema migrated; the migrations it applied."""
    writer = Warehouse(connect(url), database)
    applied = writer.migrate(migrations)
    _crash_ends_the_process()
    return writer, applied


FATAL_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT)


def _crash_ends_the_process() -> None:
    """The embedded engine takes the fatal signals as it loads, and in this process its handler
    ends nothing: sent SIGSEGV, the writer stayed alive and answered no query for 40 s (measured
    2026-12-07; a real fault was not tried), so a crash could hang the sink's write for
    WRITE_SECONDS. With the default action back, Python's handler writes every thread's stack to
    the worker's log and the process ends; the sink's next write replaces it."""
    faulthandler.disable()
    for number in FATAL_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    faulthandler.enable()


def _answer_queries(queries: Connection, url: str, database: str, query_seconds: float) -> None:
    reader: Warehouse | None = None
    while True:
        try:
            _, sql, output = queries.recv()
        except EOFError:
            return
        try:
            if reader is None:
                reader = Warehouse(connect(url, readonly=True, query_seconds=query_seconds), database)
            queries.send(("ok", reader.query(sql, output)))
        except Exception as problem:  # noqa: BLE001 - the caller's SQL is wrong, or the engine refused it
            queries.send(("failed", str(problem)))


def _die_with_parent(worker_pid: int) -> None:
    """Exit as soon as the worker is gone, even killed by SIGKILL (else the embedded engine would
    stay held and the restarted worker could not open it). Not ``PR_SET_PDEATHSIG``: it fires
    when the *thread* that started us ends, and the sink's thread may start us."""

    def watch() -> None:
        while os.getppid() == worker_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)  # nothing of ours is lost: what the worker did not see acknowledged, it replays

    threading.Thread(target=watch, name="worker-watch", daemon=True).start()
