"""The worker's topology, built in one place: topics, tables, agents and web views.

    input topic ─▶ ingest + contacts pass ──issue updates──▶ <app>-issue-updates ─▶ issues ─┐
       (by contact)   │ │ └─invalid──▶ dead-letter topic                                    │ reports
                      │ └─contacts' state──▶ <app>-contact-state (changelog)                ▼
                      └─reports, clock ticks (by queue) ──────────────▶ <app>-reports ─▶ board ─▶ /metrics

The ingest stage and its contacts pass are not a Faust agent: they read the input topic in bulk
with their own consumer, keep each input partition's contacts and agents in plain dicts and
commit their counts with their offsets (``pipeline/ingest.py``). The issues stage and the board
are Faust agents on internal topics whose messages carry up to 1,000 items each. Agents are
thin: decode, call the pure steps of ``pipeline.core.engine``, write state, send on. Delivery is
at-least-once everywhere and every step is idempotent: a message applied twice changes nothing,
and each step re-sends its current output on a replay, so output lost in a crash is sent after
all. Counters (events, dead letters, duplicates, conflicts) advance only for offsets beyond the
partition's recorded progress, so a replay never counts twice.

Every internal message is sent to an explicit partition (``partitions.partition_of``) and every table
routes its changelog by the same function of its key: each piece of state has one owner.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import faust
import msgspec
import orjson
from faust.types import EventT
from prometheus_client import CollectorRegistry

from pipeline import console
from pipeline.changelog import RECORD_BATCH_BYTES, ChangelogWrites
from pipeline.consumer import gated
from pipeline.core.board import Board, Fence, MinutePartial, Partial, Report, partial_kind, partial_minute
from pipeline.core.commits import CommitGate
from pipeline.core.expiry import EXPIRE_AT_ONCE, ExpiryClock
from pipeline.core.facts import board_minutes, contribution_rows
from pipeline.core.json_bytes import json_bytes
from pipeline.core.partitions import partition_of
from pipeline.core.privacy import Pseudonyms
from pipeline.core.progress import PartitionProgress, StageProgress, total
from pipeline.core.snapshot import snapshot
from pipeline.core.stall import StallWatch
from pipeline.core.targets import Targets
from pipeline.core.wire import (
    board_decoder,
    encode,
)
from pipeline.exposition import (
    BoardCollector,
    LagCollector,
    PipelineHealthCollector,
    SinkCollector,
    StateSizeCollector,
)
from pipeline.ingest import IngestStage
from pipeline.issues_stage import IssuesStage
from pipeline.kafka_watch import CHECK_SECONDS as METADATA_CHECK_SECONDS
from pipeline.kafka_watch import MetadataWatch
from pipeline.loop_watch import LoopWatch
from pipeline.settings import Settings
from pipeline.sink import Sink, SinkBatch
from pipeline.web import Views, WebServer
from pipeline.web_address import address_file

log = logging.getLogger("ccpulse.worker")
progress_log = logging.getLogger("ccpulse.progress")
HOUR_US = 3600 * 1_000_000
PRODUCER_BUFFER_MESSAGES = 50_000
EXIT_STALLED = 3
STARVED_SECONDS = 10.0  # a partition with messages waiting and none delivered this long is read again


class KeyedTable(faust.Table):
    """A table whose changelog partition is an explicit function of the key.

    Faust would use the partition of the event being processed; a batch mixes partitions, and
    expiry runs outside any one event, so the key decides here (the same function that chose
    the partition of the key's messages).
    """

    partition_function: Callable[[Any], int]
    generation: int | None = None  # the consumer generation whose recovery filled the table

    def partition_for_key(self, key: Any) -> int | None:
        return self.partition_function(key)

    async def on_rebalance(self, assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0) -> None:
        """Start the new generation from the changelog alone.

        Faust's in-memory store re-reads a kept partition's changelog *over* what it holds, key by
        key, up to the end it saw when the rebalance began; a batch in flight may already have put
        newer values, so some keys fell back and others did not (a partition's progress record
        behind its contacts: duplicates went uncounted after a rebalance, docs/operations.md). So
        the store is emptied and every changelog partition is read again from its start; a batch
        of an earlier generation no longer writes (``ChangelogWrites``), and its messages are
        delivered again from the committed offsets.
        """
        self.generation = generation_id
        _store(self).clear()
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        changelog = self.changelog_topic.get_topic_name()
        for offsets in (recovery.active_offsets, recovery.standby_offsets):
            for tp in [tp for tp in offsets if tp.topic == changelog]:
                del offsets[tp]  # read from the start (Faust's Recovery resumes after the last one read)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)


def faust_app(settings: Settings) -> faust.App:
    security = settings.kafka_security
    credentials: faust.SASLCredentials | faust.SSLCredentials | None = None
    if security.sasl_mechanism:
        credentials = faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password.reveal() if security.sasl_password else None,
            mechanism=security.sasl_mechanism,
            ssl_context=security.ssl_context() if security.protocol == "SASL_SSL" else None,
        )
    elif security.protocol == "SSL":
        credentials = faust.SSLCredentials(security.ssl_context())
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{address}" for address in settings.kafka_bootstrap.split(",")],
        broker_credentials=credentials,
        store="memory://",
        datadir=str((settings.data_dir / "faust").resolve()),
        web_enabled=True,  # served by pipeline.web.WebServer, registered in build()
        topic_partitions=settings.partitions,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        table_standby_replicas=0,
        producer_max_batch_size=RECORD_BATCH_BYTES,
        stream_wait_empty=False,
        # A topic created while the group formed (a fresh broker) is missing from the first
        # assignment; the consumer notices it at its next metadata refresh (Kafka's default: 5 min).
        consumer_metadata_max_age_ms=15_000,
    )


def stage_topics(app_id: str) -> tuple[str, str]:
    """The internal topics of the issues and board stages."""
    return f"{app_id}-issue-updates", f"{app_id}-reports"


def state_topic(app_id: str) -> str:
    """The contacts pass's changelog: one partition per input partition (compacted)."""
    return f"{app_id}-contact-state"


def by_partition(batch: Sequence[EventT]) -> Iterable[tuple[int, list[EventT]]]:
    groups: dict[int, list[EventT]] = defaultdict(list)
    for event in batch:
        groups[event.message.partition].append(event)
    return groups.items()


def build(settings: Settings, registry: CollectorRegistry | None = None, sink: Sink | None = None) -> faust.App:
    """Assemble the worker: topics, state tables, agents and web views. With a ``sink``, every
    stage writes its rows to ClickHouse and holds its messages until they are written."""
    app = faust_app(settings)
    gate = CommitGate()
    app.transport.Consumer = gated(gate)  # type: ignore[misc]  # commits by the worker's own account
    registry = registry or CollectorRegistry()
    targets = Targets.load(settings.targets_file)
    pseudonyms = Pseudonyms(settings.customer_key.reveal() if settings.customer_key else None)
    partitions = settings.partitions

    def raw_topic(name: str, internal: bool = False) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                         partitions=partitions, internal=internal)  # fmt: skip

    issue_name, board_name = stage_topics(settings.app_id)
    issue_topic = raw_topic(issue_name, internal=True)
    board_topic = raw_topic(board_name, internal=True)

    def table(name: str, key_type: type, partition_function: Callable[[Any], int], help_text: str) -> Any:
        created = KeyedTable(app, name=name, default=None, beacon=app.tables.beacon, key_type=key_type,
                             value_type=bytes, partitions=partitions, help=help_text)  # fmt: skip
        created.partition_function = partition_function
        return app.tables.add(created)

    reports = table("reports", str, lambda key: partition_of(key.split("\x1f", 1)[0], partitions),
                    "Per (queue, source): its current report.")  # fmt: skip
    clocks = table("clock", int, int, "Per board partition: latest event time of each input partition.")
    fences = table("fences", int, int, "Per board partition: the epoch of each input partition's owner.")

    input_seen = [time.time()]  # wall time the ingest stage last took a batch (or the start)

    def owned(topic: str) -> list[int]:
        return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)

    # ---------------------------------------------------------------- the board, in memory
    class Keeper:
        """The board of the partitions this worker owns, rebuilt from the reports table.

        Hazard: a scrape can come while the tables are still being restored after a restart or
        a rebalance; a board built then would miss the restored reports for good. So the board
        is rebuilt only once recovery has completed (and once after every completed rebalance).
        """

        board = Board()
        partitions: tuple[int, ...] = ()
        stale = True
        # per-contact and per-agent reports of versions before December 2026 (the pass sends
        # partials instead): ignored, and deleted a few at a time by the board's expiry runs
        legacy: list[str] = []

        @classmethod
        def current(cls) -> Board:
            if app.in_recovery or app.rebalancing:
                return cls.board  # the last complete board, until the tables are whole again
            active = tuple(owned(board_topic.get_topic_name()))
            if cls.stale or active != cls.partitions:
                cls.stale = False
                cls.board, cls.legacy = rebuilt(set(active))
                cls.partitions = active
                log.info("board rebuilt for partitions %s: %d reports, %d partials%s", list(active),
                         len(cls.board.reports), len(cls.board.partials),
                         f" ({len(cls.legacy)} reports of contacts and agents from before December 2026 "
                         "ignored)" if cls.legacy else "")  # fmt: skip
            return cls.board

    def rebuilt(keep: set[int]) -> tuple[Board, list[str]]:
        """The board of board partitions ``keep`` from its tables: fences first, then partials and reports."""
        fresh, legacy = Board(), []
        for partition in keep:
            for source, epoch in orjson.loads(fences.get(partition) or b"{}").items():
                fresh.fences[int(source)] = max(fresh.fences.get(int(source), 0), int(epoch))
        for key, value in list(reports.items()):
            if value is None or partition_of(key.split("\x1f", 1)[0], partitions) not in keep:
                continue
            kind = partial_kind(key)
            if kind is not None:
                fresh.apply_partial(msgspec.msgpack.decode(value, type=kind))
            elif key.split("\x1f", 1)[1].startswith(("contact:", "agent:")):
                legacy.append(key)
            else:
                fresh.apply(msgspec.msgpack.decode(value, type=Report))
        return fresh, legacy

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def rebuild_board_after_recovery(sender: Any, **kwargs: Any) -> None:
        Keeper.stale = True

    def received(batch: Sequence[EventT]) -> None:
        """Tell the commit gate what this batch brings; called first thing for every batch."""
        now = time.monotonic()
        for event in batch:
            message = event.message
            read_again = gate.received(message.generation_id, message.tp, (message.offset,), now)
            if read_again is not None:
                app.add_future(app.consumer.read_again(message.tp, read_again))  # type: ignore[attr-defined]

    async def written(events: Sequence[EventT], rows: SinkBatch) -> None:
        """The batch's work is done once its rows are in ClickHouse (at once without a sink): only
        then may its offsets be committed. Waits while the sink is full."""

        def finished() -> None:
            for event in events:
                message = event.message
                gate.finished(message.generation_id, message.tp, (message.offset,))

        if sink is None:
            finished()
            return
        rows.on_durable = finished
        await sink.write(rows)

    def queue_within(held: frozenset[int]) -> Callable[[str], bool]:
        """Whether a queue's board partition is among ``held``."""
        return lambda queue: partition_of(queue, partitions) in held

    def clock_us() -> int:
        if settings.clock == "wall":
            return time.time_ns() // 1000
        latest = 0
        for partition in owned(board_topic.get_topic_name()):
            for at in (orjson.loads(clocks.get(partition) or b"{}")).values():
                latest = max(latest, int(at))
        return latest

    # ---------------------------------------------------------------- ingest
    # Not a Faust agent: it reads the input topic in bulk with its own consumer (pipeline/ingest.py).
    ingest = IngestStage(app=app, settings=settings, sink=sink, pseudonyms=pseudonyms, targets=targets,
                         state_topic=state_topic(settings.app_id), issue_topic=issue_topic.get_topic_name(),
                         board_topic=board_topic.get_topic_name(),
                         on_batch=lambda: input_seen.__setitem__(0, time.time()))  # fmt: skip
    app.service(ingest)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- issues
    # Not a Faust agent either: its own consumer of the issue updates (pipeline/issues_stage.py).
    issues = IssuesStage(app=app, settings=settings, sink=sink, targets=targets,
                         issue_topic=issue_topic.get_topic_name(),
                         board_topic=board_topic.get_topic_name())  # fmt: skip
    app.service(issues)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- the board
    @app.agent(board_topic, name="board")
    async def board_agent(stream: faust.StreamT) -> None:
        batches = stream.take_events(settings.batch_size, within=settings.batch_seconds)  # type: ignore[attr-defined]
        board_expiry = ExpiryClock()
        async for batch in batches:
            received(batch)
            board = Keeper.current()
            writes = ChangelogWrites(app, batch[0].message.generation_id if batch else None)
            latest_reports: dict[str, Report] = {}  # one changelog write per key and batch
            changed: dict[str, Partial | None] = {}  # partials kept (None: gone), one write per key
            for partition, events in by_partition(batch):
                ticks: dict[str, int] | None = None
                for event in events:
                    message = board_decoder.decode(event.message.value or b"")
                    for tick in message.ticks:
                        ticks = ticks if ticks is not None else orjson.loads(clocks.get(partition) or b"{}")
                        name = str(tick.source_partition)
                        ticks[name] = max(int(ticks.get(name, 0)), tick.at)
                    if message.fences:
                        take_fences(board, message.fences, partition, changed, writes)
                    found: list[Partial] = [*message.minutes, *message.live]
                    for partial in found:
                        if board.apply_partial(partial):
                            changed[partial.key] = None if partial.empty else partial
                    for report in message.reports:
                        latest_reports[report.key] = report
                if ticks is not None:
                    writes.put(clocks, partition, json_bytes(ticks))
            for report in latest_reports.values():  # a key's report replaces the one before: the last counts
                board.apply(report)
            for key, report in latest_reports.items():
                if report.empty:
                    writes.delete(reports, key)
                else:
                    writes.put(reports, key, encode(report))
            for key, kept in changed.items():
                if kept is None:
                    writes.delete(reports, key)
                else:
                    writes.put(reports, key, encode(kept))
            now_us = clock_us()
            if now_us and board_expiry.due(now_us, time.monotonic()):
                expire_board(board, now_us, writes)
            await writes.send()
            rows = SinkBatch()
            touched: set[tuple[str, str, int]] = set()
            for report in latest_reports.values():
                if not report.source.startswith("agent:"):
                    report_rows, report_touched = contribution_rows(report)
                    rows.rows["contributions"].extend(report_rows)
                    touched |= report_touched
            # With a ClickHouse server several workers may write, and a queue's board can move
            # between them: a batch of its former owner, flushed late (an outage), would write
            # its board's sums over the new owner's with a later version. So there every minute
            # is summed from contributions in ClickHouse, each by the writer of its rows: the
            # contacts' minutes by the ingest stage that wrote them (docs/operations.md).
            if settings.single_writer:
                touched.update((p.queue, p.channel, p.minute) for p in changed.values() if isinstance(p, MinutePartial))
                touched.update(
                    partial_minute(key)
                    for key, p in changed.items()
                    if p is None and partial_kind(key) is MinutePartial
                )
            whole = frozenset(Keeper.partitions) if board is Keeper.board and settings.single_writer else frozenset()
            rows.minutes, rows.touched = board_minutes(board, touched, now_us, queue_within(whole))
            await written(batch, rows)

    def take_fences(board: Board, found: Sequence[Fence], partition: int, changed: dict[str, Partial | None],
                    writes: ChangelogWrites) -> None:  # fmt: skip
        """New owners of input partitions: their predecessors' partials go (from the board and its table)."""
        known = orjson.loads(fences.get(partition) or b"{}")
        for fence in found:
            known[str(fence.source)] = max(int(known.get(str(fence.source), 0)), fence.epoch)
            changed.update((key, None) for key in board.fence(fence))
        writes.put(fences, partition, json_bytes(known))

    def expire_board(board: Board, now_us: int, writes: ChangelogWrites) -> None:
        """Reports and minute partials no window can reach any more, and a few legacy reports."""
        for report in board.expired(now_us)[:EXPIRE_AT_ONCE]:
            writes.delete(reports, report.key)
            board.apply(Report(report.source, report.queue))
        for key in board.expired_partials(now_us)[:EXPIRE_AT_ONCE]:
            writes.delete(reports, key)
            board.forget(key)
        if board is Keeper.board:
            for key in Keeper.legacy[:EXPIRE_AT_ONCE]:
                writes.delete(reports, key)
            del Keeper.legacy[:EXPIRE_AT_ONCE]

    # ---------------------------------------------------------------- lag, per stage
    topics_of_stage = {"board": board_topic.get_topic_name()}
    lag: dict[str, int] = {}
    watch = StallWatch(settings.stall_seconds)

    @app.timer(interval=1.0)
    async def measure_lag() -> None:
        """Messages not yet processed and committed, per stage, over this worker's partitions;
        a stage that has them but commits nothing for CCPULSE_STALL_SECONDS stops the worker."""
        assigned = app.assignor.assigned_actives()
        committed = app.consumer._committed_offset  # type: ignore[attr-defined]  # faust: last commit per partition
        now = time.monotonic()
        held_back = sink is not None and (sink.health.failing or sink.health.blocked)
        settling = app.in_recovery or app.rebalancing
        if settling or held_back:
            watch.reset(now)  # waiting for ClickHouse is backpressure, not a stuck consumer
        if watch.settled_too_long(settling, now):
            log.critical("a rebalance or the table recovery after it has not finished for %.0f s; exiting (code 3) "
                         "so that the supervisor restarts the worker", watch.settle_limit_seconds)  # fmt: skip
            _log_stall_report(sink, committed, assigned, gate, app)
            logging.shutdown()
            os._exit(EXIT_STALLED)
        watched = [tp for tp in assigned if tp.topic in topics_of_stage.values()]
        # one request for all stages: each waits in the consumer thread behind a fetch (up to seconds)
        ends = await app.consumer.highwaters(*watched) if watched else {}
        if not (settling or held_back):
            for tp, offset in gate.starved(ends, now, STARVED_SECONDS):
                why = f"messages wait but none came for {STARVED_SECONDS:.0f} s"
                app.add_future(app.consumer.read_again(tp, offset, why))  # type: ignore[attr-defined]
        measured = {"ingest": await ingest.lag(), "issues": await issues.lag()}
        # Faust's stages: only from a complete assignment. Before the first one, or while it is
        # being settled, their lag is unknown, not 0 (a lag of 0 would say "caught up").
        for stage, topic in topics_of_stage.items() if assigned and not settling else ():
            tps = [tp for tp in watched if tp.topic == topic]
            waiting = sum(max(0, ends.get(tp, 0) - (committed.get(tp) or 0)) for tp in tps)
            measured[stage] = (waiting, sum(committed.get(tp) or 0 for tp in tps))
        app.consumer.catching_up(max(waiting for waiting, _ in measured.values()))  # type: ignore[attr-defined]
        for stage, (waiting, done) in measured.items():
            lag[stage] = waiting
            if not (app.in_recovery or app.rebalancing) and watch.stuck(stage, waiting, done, now):
                log.critical(
                    "stage %s has %d messages waiting and has committed nothing for %.0f s: the consumer "
                    "is stuck; exiting (code 3) so that the supervisor restarts the worker, which "
                    "restores its state from the changelogs and goes on from the last commit "
                    "(CCPULSE_STALL_SECONDS sets the limit)", stage, waiting, settings.stall_seconds,
                )  # fmt: skip
                _log_stall_report(sink, committed, assigned, gate, app)
                log.error("stall report: ingest commits %s, in flight %d; issues commits %s, in flight %d",
                          ingest.committed, ingest.in_flight(), issues.committed, issues.in_flight())  # fmt: skip
                logging.shutdown()
                os._exit(EXIT_STALLED)

    last_reading: list[console.Reading] = []

    @app.timer(interval=console.PROGRESS_SECONDS)
    async def report_progress() -> None:
        """The operator's progress line on the console (pipeline/console.py)."""
        progress = ingest_progress()
        health = sink.health if sink is not None else None
        reading = console.Reading(
            at=time.monotonic(), events=sum(progress.events_by_type.values()),
            dead_letters=sum(progress.invalid_by_reason.values()), lag=lag.get("ingest"),
            stage_lag=sum(waiting for stage, waiting in lag.items() if stage != "ingest"),
            sink_backlog=health.backlog_rows if health else None, sink_failing=bool(health and health.failing),
        )  # fmt: skip
        progress_log.info("%s", console.progress_line(last_reading[-1] if last_reading else None, reading))
        last_reading[:] = [reading]

    metadata_watch = MetadataWatch()

    @app.timer(interval=METADATA_CHECK_SECONDS)
    async def watch_metadata() -> None:
        """A lost metadata answer would hold every send for the client's request timeout (kafka_watch.py)."""
        producer, consumer = getattr(app.producer, "_producer", None), ingest.consumer
        metadata_watch.check({"producer": producer.client if producer is not None else None,
                              "input consumer": consumer._client if consumer is not None else None})  # fmt: skip

    @app.task
    async def tune_producer() -> None:
        # Faust's logging setup leaves faust.topics at DEBUG, which formats a record per send.
        logging.getLogger("faust.topics").setLevel(max(logging.INFO, logging.getLogger().level))
        # Table writes queue in a buffer that Faust caps at 100 messages: past that, it stops
        # delivering events until the buffer drains, waiting up to 0.1 s at a time. One batch
        # writes hundreds of keys, so the cap made the worker idle most of the time. Batches
        # (CCPULSE_BATCH_SIZE) bound what a batch can add.
        app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES

    # ---------------------------------------------------------------- exposition
    last_complete: dict[str, Any] = {}

    def steady(name: str, read: Callable[[], Any]) -> Any:
        """``read()``, or while tables are being restored (or the ingest stage takes partitions
        over) its last complete reading: a half-restored counter would look like a reset to
        Prometheus."""
        if app.in_recovery or app.rebalancing or ingest.handing_over:
            return last_complete.get(name) or read()
        last_complete[name] = value = read()
        return value

    def ingest_progress() -> PartitionProgress:
        return total(ingest.total_progress())

    def contact_health() -> StageProgress:
        return steady("contacts", read_contact_health)  # type: ignore[no-any-return]

    def read_contact_health() -> StageProgress:
        summed = StageProgress()
        for one in list(ingest.passes.values()):
            summed.duplicates += one.progress.duplicates
            summed.conflicts += one.progress.conflicts
        return summed

    registry.register(PipelineHealthCollector(lambda: steady("ingest", ingest_progress), contact_health,
                                              lambda: len(ingest.owned())))  # fmt: skip

    def state_sizes() -> dict[str, int]:
        passes = list(ingest.passes.values())
        return {"contacts": sum(p.contacts() for p in passes), "agents": sum(p.agents() for p in passes),
                "issues": issues.keys(), "reports": len(reports.data)}  # fmt: skip

    registry.register(StateSizeCollector(state_sizes))
    registry.register(BoardCollector(Keeper.current, clock_us, settings.zone, targets, settings.max_queue_labels))
    registry.register(LagCollector(lambda: dict(lag)))
    if sink is not None:
        registry.register(SinkCollector(lambda: sink.health))

        @app.task
        async def start_sink() -> None:
            sink.start(asyncio.get_running_loop())

    @app.task
    async def watch_the_loop() -> None:
        LoopWatch(asyncio.get_running_loop()).start()  # logs a loop held for seconds, and where

    def board_document() -> dict[str, Any]:
        document = snapshot(Keeper.current(), clock_us(), settings.zone, targets)
        document["zone"] = settings.zone.key
        document["input_idle_seconds"] = round(max(0.0, time.time() - input_seen[0]), 1)
        document["generated_at"] = time.time()
        return document

    def status_document() -> dict[str, Any]:
        progress = ingest_progress()
        health = contact_health()
        return {
            "app": settings.app_id,
            "topic": settings.topic,
            "clock": settings.clock,
            "now_us": clock_us(),
            "owned_partitions": {
                "input": ingest.owned(),
                "issues": issues.owned(),
                "board": owned(board_topic.get_topic_name()),
            },
            "events_by_type": dict(progress.events_by_type),
            "invalid_by_reason": dict(progress.invalid_by_reason),
            "keyed_otherwise": progress.keyed_otherwise,
            "duplicates": health.duplicates,
            "conflicts": health.conflicts,
            "board_reports": len(Keeper.current().reports),
            "board_partials": len(Keeper.current().partials),
            "lag": dict(lag),
            "sink": _sink_status(sink),
        }

    views = Views(registry=registry, board_document=board_document, status_document=status_document,
                  query=sink.query if sink is not None else None, query_token=settings.query_token,
                  stopping=lambda: bool(app.should_stop))  # fmt: skip
    app.web_server(WebServer(views, settings.http_host, settings.http_port, address_file(settings.data_dir)))
    return app


def _log_stall_report(
    sink: Sink | None, committed: dict[Any, Any], assigned: Any, gate: CommitGate, app: faust.App
) -> None:
    """What every task was waiting for, for the report of a stall (read it before restarting)."""
    try:
        log.error("stall report: sink %s", _sink_status(sink))
        try:
            log.error("stall report: producer %s", _producer_status(app))
        except Exception:  # noqa: BLE001 - aiokafka's internals may change: the rest of the report matters more
            log.exception("stall report: producer status failed")
        log.error(
            "stall report: committed offsets %s", {f"{tp.topic}/{tp.partition}": committed.get(tp) for tp in assigned}
        )
        log.error("stall report: commit accounts (generation %s) %s", gate.generation, gate.describe())
        import sys
        import threading
        import traceback

        for thread in threading.enumerate():
            frame = sys._current_frames().get(thread.ident or -1)
            if frame is not None and thread.name != "MainThread":
                where = " <- ".join(f"{f.name}:{f.lineno}" for f in reversed(traceback.extract_stack(frame)[-6:]))
                log.error("stall report: thread %s is in %s", thread.name, where)
        for task in asyncio.all_tasks():
            chain: list[str] = []
            awaited: Any = task.get_coro()
            while awaited is not None and len(chain) < 20:  # the await chain, outermost first
                frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None) or getattr(
                    awaited, "gi_frame", None)  # fmt: skip
                if frame is not None:
                    chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None) or getattr(
                    awaited, "gi_yieldfrom", None)  # fmt: skip
            log.error("stall report: task %s waits in %s", task.get_name(), " -> ".join(chain) or "?")
    except Exception:  # noqa: BLE001 - a report must never stop the exit
        log.exception("stall report failed")


def _producer_status(app: faust.App) -> dict[str, Any]:
    """Faust's Kafka producer (aiokafka): what waits to be sent or acknowledged, per partition. A
    commit waits for all of it (Faust flushes the producer first)."""
    producer = getattr(app.producer, "_producer", None)
    if producer is None:
        return {"started": False}
    accumulator, sender = producer._message_accumulator, producer._sender
    now = time.monotonic()
    return {  # aiokafka's internals: read only, for the report
        "queued": {
            f"{tp.topic}/{tp.partition}": [len(batches), round(now - batches[0]._ctime, 1)]
            for tp, batches in accumulator._batches.items()
            if batches
        },  # fmt: skip
        "awaiting_acks": sorted(f"{b.tp.topic}/{b.tp.partition}" for b in accumulator._pending_batches),
        "nodes_in_flight": sorted(sender._in_flight),
        "muted": sorted(f"{tp.topic}/{tp.partition}" for tp in sender._muted_partitions),
        "buffer": app.producer.buffer.size,
    }


def _sink_status(sink: Sink | None) -> dict[str, Any] | None:
    if sink is None:
        return None
    health = sink.health
    return {"backlog_rows": health.backlog_rows, "rows_written": dict(health.rows_written), "errors": health.errors,
            "failing": health.failing, "blocked": health.blocked, "last_success": health.last_success,
            "last_error": health.last_error}  # fmt: skip


def _store(table: Any) -> dict[Any, Any]:
    """A table's in-memory store itself (Faust's mapping API adds a sensor call per key)."""
    return table.data.data  # type: ignore[no-any-return]
