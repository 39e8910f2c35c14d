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
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.board_out import fence, send_partials, taken_over
from pipeline.changelog import LateKeys
from pipeline.core.contact_pass import ContactPass, PassOutput, legacy_owner
from pipeline.core.intake import Intake, ahead, commit_metadata, progress_from_metadata, take
from pipeline.core.privacy import Pseudonyms
from pipeline.core.progress import PartitionProgress
from pipeline.core.targets import Targets
from pipeline.core.wire import BoardMessage, Tick, encode, issue_messages
from pipeline.dead_letters import fitted
from pipeline.kafka_edge import aiokafka_producer, committed_with_metadata
from pipeline.kafka_io import KAFKA_MESSAGE_BYTES, dead_letter_bytes, partition_counts
from pipeline.settings import Settings
from pipeline.sink import Sink, SinkBatch
from pipeline.stage_runner import StageRunner

log = logging.getLogger("ccpulse.ingest")


class IngestStage(StageRunner):
    """Started with the Faust app (after its tables are restored); see the module's text."""

    watches_changelogs = True  # its changelog records carry their owner's epoch

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
        super().__init__(app=app, settings=settings, sink=sink, stage="ingest", topic=settings.topic,
                         max_records=settings.batch_size)  # fmt: skip
        self.pseudonyms = pseudonyms
        self.targets = targets
        self.state_topic = state_topic
        self.issue_topic = issue_topic
        self.board_topic = board_topic
        self.on_batch = on_batch
        self.progress: dict[int, PartitionProgress] = {}  # per owned input partition, applied so far
        self.dead_letter_bytes = KAFKA_MESSAGE_BYTES  # the largest dead letter Kafka takes (read at start)
        self.passes: dict[int, ContactPass] = {}  # per owned input partition: its contacts and agents

    async def on_start(self) -> None:
        self.dead_letter_bytes = await asyncio.to_thread(dead_letter_bytes, self.settings)
        await super().on_start()

    # ------------------------------------------------------------------ what the worker reads
    def owned(self) -> list[int]:
        return sorted(self.progress)

    def total_progress(self) -> list[PartitionProgress]:
        return list(self.progress.values())

    def after_batch(self) -> None:
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

    async def process(self, fetched: dict[TopicPartition, list[Any]]) -> None:
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
        # The rows go to the sink before the partials go to the board: a minute the board re-sums
        # from ``contributions`` (one it cannot vouch for) is re-summed after these rows.
        batch = await self.rows_first(commit, rows)
        deliveries = batch.deliveries
        deliveries += await self._send_passes(producer, outputs)
        for reroute in intake.reroutes:
            deliveries.append(await producer.send(settings.topic, reroute.value, key=reroute.key,
                                                  partition=reroute.partition, headers=reroute.headers))  # fmt: skip
        for letter in intake.dead_letters:
            value, headers = fitted(letter.value, letter.headers, self.dead_letter_bytes - len(letter.key or b""))
            deliveries.append(await producer.send(settings.dlq_topic, value, key=letter.key, headers=headers))
        if ticks:
            tick_message = encode(BoardMessage(ticks=ticks))
            for board_partition in range(settings.partitions):
                deliveries.append(await producer.send(self.board_topic, tick_message, partition=board_partition))
        self.queue(batch)

    def _pass_contacts(self, intake: Intake, rows: SinkBatch) -> dict[int, PassOutput]:
        """Each partition's events through its contacts pass; the contacts' rows into ``rows``, and
        the minutes to re-sum in ClickHouse after them: the closed ones, or with several writers
        every minute the rows change (each writer re-sums its own: docs/architecture.md)."""
        outputs: dict[int, PassOutput] = {}
        for partition, events in intake.local.items():
            out = outputs[partition] = self.passes[partition].on_batch(events, time.monotonic())  # owned: whole
            rows.rows["contact_facts"].extend(out.contact_rows)
            rows.rows["contributions"].extend(out.contribution_rows)
            if out.agent_rows:
                rows.rows["agent_states"].extend(out.agent_rows)
            rows.touched |= out.closed if self.settings.single_writer else out.touched
        return outputs

    async def _send_passes(self, producer: Any, outputs: dict[int, PassOutput]) -> list[asyncio.Future[Any]]:
        """The passes' changelog records, then their partials and issue updates of the whole batch."""
        deliveries: list[asyncio.Future[Any]] = []
        for partition, out in outputs.items():
            deliveries += await self.send_state(producer, self.state_topic, partition, out.writes, out.epoch)
        deliveries += await send_partials(producer, self.board_topic, self.settings.partitions, outputs.values())
        updates = [update for out in outputs.values() for update in out.issue_updates]
        for destination, message in issue_messages(updates, self.settings.partitions):
            deliveries.append(await producer.send(self.issue_topic, message, partition=destination))
        return deliveries

    def _input_partitions(self) -> int:
        assert self.consumer is not None
        known = self.consumer.partitions_for_topic(self.settings.topic)
        return len(known) if known else self.settings.partitions

    # ------------------------------------------------------------------ hand-overs
    def forget(self, partition: int) -> None:
        self.progress.pop(partition, None)
        self.passes.pop(partition, None)

    def changelogs(self, partition: int) -> list[TopicPartition]:
        return [TopicPartition(self.state_topic, partition)]

    def park(self, partition: int) -> bool:
        self.progress.pop(partition, None)
        return self.set_aside(self.passes, partition)

    def unpark(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> None:
        self.passes[tp.partition] = self.parked_state.pop(tp.partition)
        self.rewound(tp, committed)

    async def committed_now(self, tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata | None]:
        assert self.consumer is not None
        found = await committed_with_metadata(self.consumer, tps)
        return {tp: stored if (stored := found.get(tp)) is not None and stored.offset >= 0 else None for tp in tps}

    def rewound(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> None:
        self.progress[tp.partition] = progress_from_metadata(
            committed.metadata if committed else None, committed.offset if committed else None)  # fmt: skip

    async def take_over(self, tps: list[TopicPartition]) -> None:
        assert self.consumer is not None
        tps = await self.keep_parked(tps)
        if not tps:
            return
        passes = await self._restore([tp.partition for tp in tps])
        found = await self.committed_now(tps)
        for tp in tps:
            committed = found[tp]
            if committed is not None and not committed.metadata:
                log.warning("%s partition %d: committed offset %d has no counts with it (offsets reset by a "
                            "tool?): counting starts from zero there",
                            tp.topic, tp.partition, committed.offset)  # fmt: skip
            self.rewound(tp, committed)
            await self.start_from(tp, committed)
        await self._fence(passes)
        starts = {tp.partition: (c.offset if (c := self.committed[tp]) is not None else "start") for tp in tps}
        log.info("ingest owns input partitions %s (from offsets %s)", [tp.partition for tp in tps], starts)

    async def _fence(self, passes: dict[int, ContactPass]) -> None:
        """Each restored pass's new epoch, its fence and every partial it holds
        (``pipeline.board_out.fence``), before any batch of them is processed; then the passes are
        the stage's."""
        began = time.monotonic()
        assert self.consumer is not None
        partitions = sorted(passes)
        tps = [TopicPartition(self.settings.topic, p) for p in partitions]
        ends = {tp.partition: offset for tp, offset in (await self.consumer.end_offsets(tps)).items()}
        taken = await taken_over(passes, ends)
        await fence(aiokafka_producer(self.app), self.board_topic, self.settings.partitions, self.state_topic, taken,
                    send=self.send_state)  # fmt: skip
        self.passes.update(passes)
        log.info("contacts pass: input partitions %s taken over: %d minute sums and %d live states sent to the "
                 "board in %.1f s", partitions, sum(len(each.minutes) for each in taken.values()),
                 sum(len(each.live) for each in taken.values()), time.monotonic() - began)  # fmt: skip

    async def _restore(self, partitions: list[int]) -> dict[int, ContactPass]:
        """Each partition's contacts pass from its changelog partition, read whole (compacted); a
        partition whose changelog is empty takes its contacts from the Faust tables of versions
        before December 2026, if their changelogs are there (an upgrade: :meth:`_upgrade`)."""
        began = time.monotonic()
        retention_us = int(self.settings.contact_retention_hours * 3600 * 1_000_000)
        day = self.targets.agent_day(self.settings.zone)
        passes = {p: ContactPass(self.targets, retention_us, source=p, day=day) for p in partitions}
        tps = [changelog for p in partitions for changelog in self.changelogs(p)]

        def restore(tp: TopicPartition, key: bytes | None, value: bytes | None) -> None:
            passes[tp.partition].restore(key or b"", value)

        late = LateKeys()
        records, empty = await self.read_whole(tps, restore, late)
        late.write_again(passes, "contacts pass")
        if empty:
            records += await self._upgrade({p: passes[p] for p in empty})
        log.info("contacts pass: restored %d contacts and %d agents of partitions %s from %d changelog records "
                 "in %.1f s", sum(p.contacts() for p in passes.values()), sum(p.agents() for p in passes.values()),
                 partitions, records, time.monotonic() - began)  # fmt: skip
        return passes

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

        records, _ = await self.read_whole(tps, take_legacy)
        producer = aiokafka_producer(self.app)
        deliveries: list[asyncio.Future[Any]] = []
        for partition, written in taken.items():
            kept: dict[bytes, bytes | None] = {key: value for key, value in written.items() if value is not None}
            if kept:
                deliveries += await self.send_state(producer, self.state_topic, partition, kept)
        await asyncio.gather(*deliveries)
        moved = sum(len(w) for w in taken.values())
        log.warning("contacts pass: upgrade from the Faust contacts stage: %d contacts and agents taken over from "
                    "%s for partitions %s (%d records read); delete those topics once every partition has "
                    "been taken over (docs/operations.md)", moved, legacy, sorted(passes), records)  # fmt: skip
        return records
