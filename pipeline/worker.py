"""Running one worker in the foreground (``ccpulse worker``)."""

from __future__ import annotations

import atexit
import faulthandler
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from faust.worker import Worker

from pipeline import console
from pipeline.board_stage import board_changelogs
from pipeline.collector import tune_garbage_collection
from pipeline.core.targets import Targets
from pipeline.issues_stage import issues_changelog
from pipeline.kafka_io import ensure_topics
from pipeline.settings import Settings
from pipeline.sink import FaultSwitch, Sink
from pipeline.topology import build, stage_topics, state_topic
from pipeline.warehouse import Warehouse, WarehouseError, connect, database_of, load_migrations, migrations_dir
from pipeline.warehouse_process import WarehouseProcess

log = logging.getLogger("ccpulse.worker")


def run_worker(settings: Settings, verbose: bool = False) -> int:
    # a worker that dies of a signal in C code (a segfault, an abort) leaves every thread's Python
    # stack on stderr, instead of ending without a line
    faulthandler.enable()
    # no signal blocked, whatever the starting process blocked: one that loaded the embedded engine
    # blocks SIGPIPE (chDB does so as it loads), and a blocked SIGTERM would make the worker unstoppable
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    logging_config = console.configure(settings.log_level, verbose)
    Targets.load(settings.targets_file, settings.zone)  # a wrong targets file stops us before anything else
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    sink = open_sink(settings)
    app = build(settings, sink=sink)
    # Every topic the stages read exists before their consumers join their groups: a topic missing
    # then is left out of the first assignment until the next metadata refresh (15 s), which then
    # rebalances the group (with Faust's consumer, in one CI run of 2026-12-02, for good).
    changelogs = (issues_changelog(settings.app_id), *board_changelogs(settings.app_id))
    ensure_topics(
        settings,
        internal=stage_topics(settings.app_id),
        compacted=changelogs,
        per_input=(state_topic(settings.app_id),),
        fit_dead_letters=True,
    )
    log.info(
        "worker starting: kafka %s, topic %s (%d partitions), web port %s, ClickHouse %s",
        settings.kafka_bootstrap,
        settings.topic,
        settings.partitions,
        settings.http_port or "any free one",
        clickhouse_shown(settings) if sink else "off",
    )
    # logging is ours (console.configure above): Faust's set-up would put its handler at its level
    worker = Worker(app, loglevel=console.library_level(settings.log_level, verbose), quiet=not verbose,
                    redirect_stdouts=False, logging_config=logging_config, override_logging=False)  # fmt: skip
    worker.spinner = None  # its terminal codes would land in every log file

    async def deadline(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:  # as the stop begins
        stop_deadline(settings.stop_seconds, crashed=lambda: app.crash_reason is not None)

    app.on_before_shutdown.connect(deadline)  # type: ignore[arg-type]  # mypy: a coroutine function is an Awaitable one

    tune_garbage_collection()
    worker.execute_from_commandline()  # returns only by SystemExit
    return 0


def stop_deadline(seconds: float, crashed: Callable[[], bool]) -> None:
    """End the process if its stop takes longer than ``seconds`` (0: wait as long as it takes):
    with code 0, or 1 if the stop follows a crash (``crashed()``), as the stop would have.

    With Kafka unreachable a stop can wait for ever: Faust flushes its producer, and aiokafka
    retries a batch for ever while its partition's leader is known but unreachable (measured: a
    worker busy on a backlog whose broker stopped was still running 240 s after SIGTERM; an idle one
    exited after 62 s, Faust's wait for a consumer thread that died of aiokafka's ``CancelledError``).
    Ending it loses nothing: offsets are committed only after the rows and changelog records they
    cover are durable, so the next start reads again what was not (docs/operations.md)."""
    if seconds <= 0:
        return

    def cut_short() -> None:
        log.warning("worker: the stop took longer than %.0f s (CCPULSE_STOP_SECONDS; is Kafka reachable?): "
                    "exiting now. Nothing is lost: the next start goes on from the last commit", seconds)  # fmt: skip
        console.exit_now(1 if crashed() else 0)

    timer = threading.Timer(seconds, cut_short)
    timer.daemon = True
    timer.start()


def clickhouse_shown(settings: Settings) -> str:
    """The ClickHouse URL without its password (for logs)."""
    from urllib.parse import urlsplit, urlunsplit

    url = settings.effective_clickhouse_url.reveal()
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def warehouse_opener(settings: Settings, readonly: bool = False):  # type: ignore[no-untyped-def]
    url = settings.effective_clickhouse_url.reveal()
    database = database_of(url, settings.clickhouse_database)

    def open_warehouse() -> Warehouse:
        return Warehouse(connect(url, readonly=readonly, query_seconds=settings.query_seconds if readonly else None),
                         database)  # fmt: skip

    return open_warehouse


def open_sink(settings: Settings) -> Sink | None:
    """The sink, writing through a ClickHouse writer process (pipeline/warehouse_process.py). With
    the embedded engine, the process opens it and migrates the schema now (a wrong path or an
    engine held by another process stops the worker with a clear message); a server that does not
    answer yet is retried by the sink, and the stages wait for it."""
    if not settings.sink_enabled:
        log.warning("CCPULSE_CLICKHOUSE_URL=off: nothing is written to ClickHouse")
        return None
    url = settings.effective_clickhouse_url.reveal()
    writer = WarehouseProcess(url, database_of(url, settings.clickhouse_database), load_migrations(migrations_dir()),
                              settings.log_level, query_seconds=settings.query_seconds)  # fmt: skip
    try:
        writer.start()
    except Exception as problem:  # noqa: BLE001
        if not url.startswith("chdb:"):
            raise WarehouseError(f"the ClickHouse writer process did not start: {problem}") from problem
        raise WarehouseError(
            f"cannot open the embedded ClickHouse at {clickhouse_shown(settings)}: {problem}. "
            "Another process may hold it (one process at a time: stop it, or point CCPULSE_DATA_DIR "
            "elsewhere)"
        ) from problem
    atexit.register(writer.stop)  # before multiprocessing's own exit handler (last registered runs first)
    return Sink(lambda: writer, flush_rows=settings.sink_flush_rows, flush_seconds=settings.sink_flush_seconds,
                max_rows=settings.sink_max_rows, faults=FaultSwitch(settings.sink_fault_file),
                query=writer.query, resum_seconds=settings.sink_resum_seconds)  # fmt: skip
