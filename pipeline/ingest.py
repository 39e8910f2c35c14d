"""The ingest stage and the contacts pass: reads the input topic in bulk with its own consumer,
validates, dead-letters, writes the ``events`` and ``contact_facts`` rows, and keeps every owned
input partition's contacts and agents in plain dicts (``pipeline.core.contact_pass``).

    input topic ──getmany (thousands at once)──▶ pipeline.core.intake.take ─┬─▶ dead-letter topic, clock ticks
        ▲      ▲                                                           ├─▶ re-routed: input topic, owner's partition
        │      └── keyed otherwise                                          ▼
        │                          contacts pass of the partition ──▶ <app>-contact-state (changelog, partition p)
        │                                        ├─ reports ──▶ <app>-reports (by queue) ─▶ board
        │                                        ├─ issue updates ──▶ <app>-issue-updates ─▶ issues
        │                                        └─ rows ──▶ ClickHouse
        └── commit(offset, metadata=counts) ◀── sent and durable

Why not a Faust agent: the input topic carries one message per event, and Faust's per-message
path (fetcher thread, conductor, stream, acks) costs ~89 µs a message on this machine
(``bench/throughput.py``'s Faust floor: 11,237 messages/s for an agent that only parses), which
capped the whole worker. Here aiokafka's ``getmany`` hands over whole fetches, and a contact's
events need no hop: they are on the partition that owns the contact (``pipeline.core.intake``).

Exactness: the consumer group is ``<app id>-ingest``. What the stage counted for a partition
(events by type, invalid by reason, latest event time) is committed **with** the offset, as its
metadata, in one request: after a crash the next owner starts from an offset and counts that
belong together, re-reads what came after (passed on and written again: both idempotent) and
counts it once. The contacts' state is restored from its changelog partition, whole, when the
partition is assigned (it may be ahead of the committed offset: the pass applies a replayed
event as a no-op and counts duplicates once, ``pipeline.core.contact_pass``). An offset is
committed only after everything its batch produced is acknowledged by the broker and its rows
are durable in ClickHouse. Batches overlap: the next is read and processed while the previous
ones are being sent and written (at most ``MAX_IN_FLIGHT`` uncommitted), and commits follow in
order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from pipeline.changelog import send_records
from pipeline.core.contact_pass import ContactPass, PassOutput, TakeOver, legacy_owner
from pipeline.core.intake import Intake, ahead, commit_metadata, progress_from_metadata, take
from pipeline.core.privacy import Pseudonyms
from pipeline.core.progress import PartitionProgress
from pipeline.core.targets import Targets
from pipeline.core.wire import BoardMessage, Tick, encode, issue_messages, partial_messages
from pipeline.kafka_edge import aiokafka_producer, committed_with_metadata
from pipeline.kafka_io import partition_counts
from pipeline.settings import Settings
from pipeline.sink import Sink, SinkBatch

log = logging.getLogger("ccpulse.ingest")

MAX_IN_FLIGHT = 128  # batches read and processed but not yet committed (their rows wait in the sink, bounded there)
REVOKE_WAIT_SECONDS = 10.0  # how long a hand-over waits for in-flight batches to be committed
FETCH_BYTES_PER_PARTITION = 1024 * 1024  # aiokafka's default: a batch (CCPULSE_BATCH_SIZE) is far smaller


@dataclass
class InFlight:
    """A processed batch on its way: what it sent, whether its rows are durable, what to commit."""

    generation: int
    commit: dict[TopicPartition, OffsetAndMetadata]
    deliveries: list[asyncio.Future[Any]]
    durable: asyncio.Event = field(default_factory=asyncio.Event)

    async def finished(self) -> None:
        """Returns once every message is acknowledged and every row durable; raises if a send failed."""
        if self.deliveries:
            await asyncio.gather(*self.deliveries)
        await self.durable.wait()


class IngestStage(Service):
    """Started with the Faust app (after its tables are restored); see the module's text."""

    def __init__(
        self,
        *,
        app: Any,
        settings: Settings,
        sink: Sink | None,
        pseudonyms: Pseudonyms,
        targets: Targets,
        state_topic: str,
        issue_topic: str,
        board_topic: str,
        on_batch: Callable[[], None],
    ) -> None:
        super().__init__()
        self.app = app
        self.settings = settings
        self.sink = sink
        self.pseudonyms = pseudonyms
        self.targets = targets
        self.state_topic = state_topic
        self.issue_topic = issue_topic
        self.board_topic = board_topic
        self.on_batch = on_batch
        self.progress: dict[int, PartitionProgress] = {}  # per owned input partition, applied so far
        self.passes: dict[int, ContactPass] = {}  # per owned input partition: its contacts and agents
        self.restorer: AIOKafkaConsumer | None = None  # reads the state changelog (no group)
        self.handing_over = False  # between a revocation and the next assignment's take-over
        self.committed: dict[TopicPartition, OffsetAndMetadata | None] = {}  # per owned partition
        self.consumer: AIOKafkaConsumer | None = None
        self._in_flight: deque[InFlight] = deque()
        self._changed = asyncio.Event()  # a batch was added or finished
        self._batch = asyncio.Lock()  # held while a batch is read into the in-flight queue
        self._generation = 0  # moves on with every hand-over and rewind: older batches never commit
        self._stopping = False

    # ------------------------------------------------------------------ what the worker reads
    def owned(self) -> list[int]:
        return sorted(self.progress)

    def total_progress(self) -> list[PartitionProgress]:
        return list(self.progress.values())

    async def lag(self) -> tuple[int, int]:
        """(messages not yet committed, sum of committed offsets) over the owned partitions."""
        if self.consumer is None or not self.committed:
            return 0, 0
        tps = list(self.committed)
        try:
            ends = await self.consumer.end_offsets(tps)
        except KafkaError:
            return 0, 0
        waiting = done = 0
        for tp in tps:
            committed = self.committed.get(tp)
            offset = committed.offset if committed is not None else 0
            waiting += max(0, ends.get(tp, 0) - offset)
            done += offset
        return waiting, done

    # ------------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            group_id=f"{settings.app_id}-ingest",
            client_id=f"{settings.app_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
            session_timeout_ms=int(settings.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(min(3.0, settings.session_timeout_seconds / 3) * 1000),
            metadata_max_age_ms=15_000,
            **settings.kafka_security.aiokafka_options(),  # type: ignore[arg-type]
        )
        self.restorer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            group_id=None,
            client_id=f"{settings.app_id}-restore",
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * FETCH_BYTES_PER_PARTITION,
            **settings.kafka_security.aiokafka_options(),  # type: ignore[arg-type]
        )
        await self.restorer.start()
        self.consumer.subscribe([settings.topic], listener=_HandOver(self))
        await self.consumer.start()
        self.add_future(self._read())
        self.add_future(self._commit())

    async def on_stop(self) -> None:
        """Finish the batch in hand, commit what is finished (briefly), leave the group."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._settle(), REVOKE_WAIT_SECONDS)
        except TimeoutError:
            log.warning("stopping with %d batches not committed: they are read again after the restart",
                        len(self._in_flight))  # fmt: skip
        if self.consumer is not None:
            await self.consumer.stop()
        if self.restorer is not None:
            await self.restorer.stop()

    # ------------------------------------------------------------------ reading
    async def _read(self) -> None:
        try:
            await self._read_batches()
        except Exception as problem:  # a bug, or a Kafka error the client does not retry: stop the worker
            if self._stopping:
                return
            log.critical("ingest stopped: %s: %s; stopping the worker (the supervisor restarts it; it goes on "
                         "from the last commit)", type(problem).__name__, problem, exc_info=True)  # fmt: skip
            await self.app.crash(problem)

    async def _read_batches(self) -> None:
        assert self.consumer is not None
        while not self._stopping:
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                await self._wait_for_change()
                continue
            fetched = await self.consumer.getmany(timeout_ms=200, max_records=self.settings.batch_size)
            if not fetched:
                continue
            async with self._batch:
                await self._process(fetched)
            self._align()

    def _align(self) -> None:
        """Pause the partitions that ran ahead in event time (``pipeline.core.intake.ahead``);
        resume them once the slowest partition with messages waiting has caught up."""
        assert self.consumer is not None
        latest, waiting = {}, set()
        for tp in self.committed:
            progress = self.progress.get(tp.partition)
            if progress is None:
                continue
            latest[tp] = progress.latest_at
            end = self.consumer.highwater(tp)
            if end is None or progress.next_offset < end:
                waiting.add(tp)
        pause = ahead(latest, waiting)
        paused = self.consumer.paused()
        if pause - paused:
            self.consumer.pause(*(pause - paused))
        if paused - pause:
            self.consumer.resume(*(paused - pause))

    async def _process(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        self.on_batch()
        settings = self.settings
        intake = Intake()
        commit: dict[TopicPartition, OffsetAndMetadata] = {}
        ticks: list[Tick] = []
        input_partitions = self._input_partitions()
        for tp, records in fetched.items():
            progress = self.progress.get(tp.partition)
            if progress is None:  # handed over while this batch was fetched: its new owner reads it
                continue
            latest_before = progress.latest_at
            take(progress, settings.topic, tp.partition, records, self.pseudonyms, input_partitions, intake)
            commit[tp] = OffsetAndMetadata(progress.next_offset, commit_metadata(progress))
            if progress.latest_at > latest_before:
                ticks.append(Tick(tp.partition, progress.latest_at))
        for partition, first, last in intake.gaps:
            log.warning("%s partition %d: offsets %d..%d are not in the log (transaction markers, or deleted by "
                        "retention before this worker read them); they are not counted",
                        settings.topic, partition, first, last)  # fmt: skip
        producer = aiokafka_producer(self.app)
        rows = SinkBatch()
        if intake.rows:
            rows.rows["events"] = intake.rows
        outputs = self._pass_contacts(intake, rows)
        batch = InFlight(self._generation, commit, [])
        # The rows go to the sink before the partials go to the board: a minute the board re-sums
        # from ``contributions`` (one it cannot vouch for) is re-summed after these rows.
        if self.sink is None:
            batch.durable.set()
        else:
            rows.on_durable = batch.durable.set
            await self.sink.write(rows)  # waits while the sink's backlog is full (backpressure)
        deliveries = batch.deliveries
        deliveries += await self._send_passes(producer, outputs)
        for reroute in intake.reroutes:
            deliveries.append(await producer.send(settings.topic, reroute.value, key=reroute.key,
                                                  partition=reroute.partition, headers=reroute.headers))  # fmt: skip
        for letter in intake.dead_letters:
            deliveries.append(await producer.send(settings.dlq_topic, letter.value, key=letter.key,
                                                  headers=letter.headers))  # fmt: skip
        if ticks:
            tick_message = encode(BoardMessage(ticks=ticks))
            for board_partition in range(settings.partitions):
                deliveries.append(await producer.send(self.board_topic, tick_message, partition=board_partition))
        self._in_flight.append(batch)
        self._changed.set()

    def _pass_contacts(self, intake: Intake, rows: SinkBatch) -> dict[int, PassOutput]:
        """Each partition's events through its contacts pass; the contacts' rows into ``rows``, and
        the minutes to re-sum in ClickHouse after them: the closed ones, or with several writers
        every minute the rows change (each writer re-sums its own: docs/architecture.md)."""
        outputs: dict[int, PassOutput] = {}
        for partition, events in intake.local.items():
            out = outputs[partition] = self.passes[partition].on_batch(events, time.monotonic())  # owned: whole
            rows.rows["contact_facts"].extend(out.contact_rows)
            rows.rows["contributions"].extend(out.contribution_rows)
            rows.touched |= out.closed if self.settings.single_writer else out.touched
        return outputs

    async def _send_passes(self, producer: Any, outputs: dict[int, PassOutput]) -> list[asyncio.Future[Any]]:
        """The passes' changelog records, then their partials and issue updates of the whole batch."""
        deliveries: list[asyncio.Future[Any]] = []
        for partition, out in outputs.items():
            deliveries += await send_records(producer, self.state_topic, partition, out.writes)
        deliveries += await self._send_partials(producer, outputs.values())
        updates = [update for out in outputs.values() for update in out.issue_updates]
        for destination, message in issue_messages(updates, self.settings.partitions):
            deliveries.append(await producer.send(self.issue_topic, message, partition=destination))
        return deliveries

    async def _send_partials(
        self, producer: Any, found: Collection[PassOutput | TakeOver]
    ) -> list[asyncio.Future[Any]]:
        """The partials of passes' batches (or take-overs), one message per board partition."""
        minutes = [partial for each in found for partial in each.minutes]
        live = [partial for each in found for partial in each.live]
        return [await producer.send(self.board_topic, message, partition=destination)
                for destination, message in partial_messages(minutes, live, self.settings.partitions)]  # fmt: skip

    def _input_partitions(self) -> int:
        assert self.consumer is not None
        known = self.consumer.partitions_for_topic(self.settings.topic)
        return len(known) if known else self.settings.partitions

    # ------------------------------------------------------------------ committing, in order
    async def _commit(self) -> None:
        try:
            await self._commit_in_order()
        except Exception as problem:
            if self._stopping:
                return
            log.critical("ingest commits stopped: %s: %s; stopping the worker", type(problem).__name__, problem,
                         exc_info=True)  # fmt: skip
            await self.app.crash(problem)

    async def _commit_in_order(self) -> None:
        assert self.consumer is not None
        while True:
            if not self._in_flight:
                await self._wait_for_change()
                continue
            head = self._in_flight[0]
            try:
                await head.finished()
            except Exception as problem:  # noqa: BLE001 - a send failed for good: read it all again
                await self._rewind(f"a message could not be sent ({type(problem).__name__}: {problem})")
                continue
            offsets: dict[TopicPartition, OffsetAndMetadata] = {}
            while self._in_flight and self._in_flight[0].durable.is_set() and _sent(self._in_flight[0]):
                done = self._in_flight.popleft()
                if done.generation == self._generation:
                    offsets.update(done.commit)
            self._changed.set()
            offsets = {tp: value for tp, value in offsets.items() if tp in self.committed}
            if not offsets:
                continue
            try:
                await self.consumer.commit(offsets)
            except KafkaError as problem:
                # a hand-over under way: the new owner reads from the last commit (counted once)
                log.warning("ingest commit failed (%s: %s); the partitions' next owner reads again from "
                            "their last commit", type(problem).__name__, problem)  # fmt: skip
                continue
            for tp, value in offsets.items():
                if tp in self.committed:
                    self.committed[tp] = value

    async def _rewind(self, why: str) -> None:
        """Forget every batch in flight and read again from the last commit, with its counts."""
        assert self.consumer is not None
        async with self._batch:
            self._generation += 1
            self._in_flight.clear()
            for tp, committed in self.committed.items():
                self.progress[tp.partition] = progress_from_metadata(
                    committed.metadata if committed else None, committed.offset if committed else None)  # fmt: skip
                if committed is not None:
                    self.consumer.seek(tp, committed.offset)
                else:
                    await self.consumer.seek_to_beginning(tp)
            log.error("ingest: %s; reading again from the last commit %s", why,
                      {tp.partition: c.offset if c else None for tp, c in self.committed.items()})  # fmt: skip
            self._changed.set()

    async def _wait_for_change(self) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), 0.5)
        except TimeoutError:
            pass

    async def _settle(self) -> None:
        """Wait until no batch is being read and every batch in flight is committed (or dropped)."""
        async with self._batch:
            while self._in_flight:
                await self._wait_for_change()

    # ------------------------------------------------------------------ hand-overs
    async def revoked(self, partitions: set[TopicPartition]) -> None:
        self.handing_over = True
        began = time.monotonic()
        try:
            await asyncio.wait_for(self._settle(), REVOKE_WAIT_SECONDS)
        except TimeoutError:
            log.warning("ingest hand-over: %d batches not committed after %.0f s; the partitions' next owner "
                        "reads them again (counted once)", len(self._in_flight), time.monotonic() - began)  # fmt: skip
        self._generation += 1
        self._in_flight.clear()
        for tp in partitions:
            self.progress.pop(tp.partition, None)
            self.committed.pop(tp, None)
            self.passes.pop(tp.partition, None)
        self._changed.set()

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Take the partitions over: their contacts from the changelog, then their committed offsets
        and counts. No batch is processed meanwhile (records fetched already wait): a partition's
        events are never applied before its state is whole."""
        async with self._batch:
            await self._take_over(sorted(partitions))
        self.handing_over = False

    async def _take_over(self, tps: list[TopicPartition]) -> None:
        assert self.consumer is not None
        await self._restore([tp.partition for tp in tps])
        found = await committed_with_metadata(self.consumer, tps)
        for tp in tps:
            stored = found.get(tp)
            committed = stored if stored is not None and stored.offset >= 0 else None
            if committed is not None and not committed.metadata:
                log.warning("%s partition %d: committed offset %d has no counts with it (offsets reset by a "
                            "tool?): counting starts from zero there",
                            tp.topic, tp.partition, committed.offset)  # fmt: skip
            self.progress[tp.partition] = progress_from_metadata(
                committed.metadata if committed else None, committed.offset if committed else None)  # fmt: skip
            self.committed[tp] = committed
            if committed is not None:
                self.consumer.seek(tp, committed.offset)
        await self._fence([tp.partition for tp in tps])
        starts = {tp.partition: (c.offset if (c := self.committed[tp]) is not None else "start") for tp in tps}
        log.info("ingest owns input partitions %s (from offsets %s)", [tp.partition for tp in tps], starts)
        self._changed.set()

    async def _fence(self, partitions: list[int]) -> None:
        """Each restored pass's new epoch into its changelog (acknowledged first: a later owner
        must see it even if this one dies now), then tell every board partition that this worker
        owns ``partitions`` now (earlier owners' partials go), then send every partial the passes
        hold; all acknowledged before any batch of them is processed."""
        producer = aiokafka_producer(self.app)
        began = time.monotonic()
        taken = {p: self.passes[p].take_over(time.time_ns() // 1000) for p in partitions}
        kept = [await send_records(producer, self.state_topic, p, each.writes) for p, each in taken.items()]
        await asyncio.gather(*(delivery for deliveries in kept for delivery in deliveries))
        message = encode(BoardMessage(fences=[each.fence for each in taken.values()]))
        deliveries = [await producer.send(self.board_topic, message, partition=board_partition)
                      for board_partition in range(self.settings.partitions)]  # fmt: skip
        deliveries += await self._send_partials(producer, taken.values())
        await asyncio.gather(*deliveries)
        log.info("contacts pass: input partitions %s taken over: %d minute sums and %d live states sent to the "
                 "board in %.1f s", partitions, sum(len(each.minutes) for each in taken.values()),
                 sum(len(each.live) for each in taken.values()), time.monotonic() - began)  # fmt: skip

    async def _restore(self, partitions: list[int]) -> None:
        """Each partition's contacts pass from its changelog partition, read whole (compacted); a
        partition whose changelog is empty takes its contacts from the Faust tables of versions
        before December 2026, if their changelogs are there (an upgrade: :meth:`_upgrade`)."""
        began = time.monotonic()
        retention_us = int(self.settings.contact_retention_hours * 3600 * 1_000_000)
        passes = {p: ContactPass(self.targets, retention_us, source=p) for p in partitions}
        tps = [TopicPartition(self.state_topic, p) for p in partitions]

        def restore(tp: TopicPartition, key: bytes | None, value: bytes | None) -> None:
            passes[tp.partition].restore(key or b"", value)

        records, empty = await self._read_whole(tps, restore)
        if empty:
            records += await self._upgrade({p: passes[p] for p in empty})
        self.passes.update(passes)
        log.info("contacts pass: restored %d contacts and %d agents of partitions %s from %d changelog records "
                 "in %.1f s", sum(p.contacts() for p in passes.values()), sum(p.agents() for p in passes.values()),
                 partitions, records, time.monotonic() - began)  # fmt: skip

    async def _read_whole(
        self, tps: list[TopicPartition], apply: Callable[[TopicPartition, bytes | None, bytes | None], None]
    ) -> tuple[int, list[int]]:
        """Every record of ``tps`` up to their ends now, in order; (records read, partitions empty)."""
        assert self.restorer is not None
        self.restorer.assign(tps)
        await self.restorer.seek_to_beginning(*tps)
        ends = await self.restorer.end_offsets(tps)
        pending = {tp for tp in tps if ends.get(tp, 0) > 0}
        records = 0
        while pending:
            fetched = await self.restorer.getmany(*pending, timeout_ms=500, max_records=20_000)
            for tp, found in fetched.items():
                for record in found:
                    apply(tp, record.key, record.value)
                records += len(found)
            for tp in list(pending):
                if await self.restorer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        self.restorer.assign([])
        return records, [tp.partition for tp in tps if ends.get(tp, 0) == 0]

    async def _upgrade(self, passes: dict[int, ContactPass]) -> int:
        """Contacts and agents of the Faust tables the contacts stage kept before December 2026,
        for these partitions (whose new changelog is empty), written to the new changelog."""
        assert self.restorer is not None
        app_id = self.settings.app_id
        legacy = [f"{app_id}-contacts-changelog", f"{app_id}-agents-changelog"]
        counts = await asyncio.to_thread(partition_counts, self.settings, legacy)
        tps = [TopicPartition(name, p) for name, count in counts.items() for p in range(count)]
        if not tps:
            return 0
        partitions = self._input_partitions()
        taken: dict[int, dict[bytes, bytes | None]] = {p: {} for p in passes}

        def take_legacy(tp: TopicPartition, key: bytes | None, value: bytes | None) -> None:
            found = legacy_owner(key, partitions)
            if found is not None and found[1] in passes:
                passes[found[1]].restore(found[0], value)
                taken[found[1]][found[0]] = value

        records, _ = await self._read_whole(tps, take_legacy)
        producer = aiokafka_producer(self.app)
        deliveries: list[asyncio.Future[Any]] = []
        for partition, written in taken.items():
            kept: dict[bytes, bytes | None] = {key: value for key, value in written.items() if value is not None}
            if kept:
                deliveries += await send_records(producer, self.state_topic, partition, kept)
        await asyncio.gather(*deliveries)
        moved = sum(len(w) for w in taken.values())
        log.warning("contacts pass: upgrade from the Faust contacts stage: %d contacts and agents taken over from "
                    "%s for partitions %s (%d records read); delete those topics once every partition has "
                    "been taken over (docs/operations.md)", moved, legacy, sorted(passes), records)  # fmt: skip
        return records


def _sent(batch: InFlight) -> bool:
    return all(delivery.done() and not delivery.exception() for delivery in batch.deliveries)


class _HandOver(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: IngestStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.stage.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.stage.assigned(assigned)
