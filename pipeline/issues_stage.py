"""The issues stage: reads ``<app>-issue-updates`` with its own consumer (group ``<app>-issues``)
and runs each owned partition's issues pass (``pipeline.core.issue_pass``).

    <app>-issue-updates, partition i ──getmany──▶ issues pass of i ─┬─▶ <app>-issues-changelog, partition i
                                                                     ├─▶ minute partials ──▶ <app>-reports ─▶ board
                                                                     └─▶ rows (issues, contact_issues,
                                                                         contributions) ──▶ ClickHouse
        ▲
        └── commit(offset) ◀── every message acknowledged, every row durable

Why not a Faust agent (as until December 2026): on a deep backlog Faust's consumer stopped
delivering this topic to the agent with thousands of messages waiting — the class of failure of
faust-streaming's open issue #175 — and the stall watchdog restarted the worker, again and again
(docs/performance.md). Here the stage reads with aiokafka's public ``getmany`` through the
:class:`~pipeline.stage_runner.StageRunner` the ingest stage runs on.

Exactness: a partition's state is restored whole from its changelog partition when the stage is
assigned it (the records Faust's ``issues`` table wrote before, too); it may be ahead of the
committed offset, and the pass applies what it has applied before as a replay (no double count,
its outcome sent again). A new owner fences earlier owners' partials on the board and sends every
sum it holds before its first batch (``pipeline.board_out``), as the ingest stage does for input
partitions. Without a committed offset (a new group, or an upgrade from the Faust
agent, whose group was the app's) reading starts at the offset the progress record says comes
next, else at the start of the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.board_out import fence, send_partials, taken_over
from pipeline.changelog import LateKeys, changelog_key
from pipeline.core.issue_pass import IssueOutput, IssuePass
from pipeline.core.targets import Targets
from pipeline.kafka_edge import aiokafka_producer
from pipeline.settings import Settings
from pipeline.sink import Sink, SinkBatch
from pipeline.stage_runner import StageRunner

log = logging.getLogger("ccpulse.issues")

# The stage takes blocks, not updates: each holds one ingest batch's issue updates for one issue
# partition (up to ITEMS_PER_MESSAGE; ~160 on a backlog). One block per BLOCK_SHARE events of
# CCPULSE_BATCH_SIZE keeps a batch near the work of a few ingest batches (400 blocks by default).
BLOCK_SHARE = 20


def issues_changelog(app_id: str) -> str:
    """The issues stage's changelog: the topic of the Faust table it kept before December 2026."""
    return f"{app_id}-issues-changelog"


class IssuesStage(StageRunner):
    watches_changelogs = True  # its changelog records carry their owner's epoch

    def __init__(self, *, app: Any, settings: Settings, sink: Sink | None, targets: Targets, issue_topic: str,
                 board_topic: str) -> None:  # fmt: skip
        super().__init__(app=app, settings=settings, sink=sink, stage="issues", topic=issue_topic,
                         max_records=max(1, settings.batch_size // BLOCK_SHARE), linger=True)  # fmt: skip
        self.targets = targets
        self.board_topic = board_topic
        self.changelog = issues_changelog(settings.app_id)
        self.retention_us = int(settings.contact_retention_hours * 3600 * 1_000_000)
        self.passes: dict[int, IssuePass] = {}  # per owned issue-updates partition

    def keys(self) -> int:
        return sum(each.keys() for each in list(self.passes.values()))

    def owned(self) -> list[int]:
        return sorted(self.passes)

    # ------------------------------------------------------------------ a batch
    async def process(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        rows = SinkBatch()
        commit: dict[TopicPartition, OffsetAndMetadata] = {}
        outputs: dict[int, IssueOutput] = {}
        for tp, records in fetched.items():
            issue_pass = self.passes.get(tp.partition)
            if issue_pass is None:  # handed over while this batch was fetched: its new owner reads it
                continue
            out = outputs[tp.partition] = issue_pass.on_batch(
                ((record.offset, record.value or b"") for record in records), time.monotonic()
            )
            commit[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
            for table, found in out.rows.items():
                rows.rows[table].extend(found)
            rows.touched |= out.closed if self.settings.single_writer else out.touched
            if out.holes:
                log.warning("%s partition %d: offsets %d..%d never arrived (transaction markers, or deleted by "
                            "retention before this worker read them); they are not counted",
                            self.topic, tp.partition, out.holes[0], out.holes[-1])  # fmt: skip
            await asyncio.sleep(0)  # a turn for the rest of the loop between partitions
        batch = await self.rows_first(commit, rows)
        producer = aiokafka_producer(self.app)
        for partition, out in outputs.items():
            writes = {changelog_key(key): value for key, value in out.writes.items()}
            batch.deliveries += await self.send_state(producer, self.changelog, partition, writes, out.epoch)
        batch.deliveries += await send_partials(producer, self.board_topic, self.settings.partitions,
                                                outputs.values())  # fmt: skip
        self.queue(batch)

    # ------------------------------------------------------------------ hand-overs
    def forget(self, partition: int) -> None:
        self.passes.pop(partition, None)

    def changelogs(self, partition: int) -> list[TopicPartition]:
        return [TopicPartition(self.changelog, partition)]

    def park(self, partition: int) -> bool:
        return self.set_aside(self.passes, partition)

    def unpark(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> None:
        self.passes[tp.partition] = self.parked_state.pop(tp.partition)

    async def take_over(self, tps: list[TopicPartition]) -> None:
        assert self.consumer is not None
        tps = await self.keep_parked(tps)
        if not tps:
            return
        began = time.monotonic()
        partitions = [tp.partition for tp in tps]
        passes = {p: IssuePass(self.targets, self.retention_us, partition=p) for p in partitions}

        def restore(tp: TopicPartition, key: bytes | None, value: bytes | None) -> None:
            if key is not None:
                passes[tp.partition].restore(key, value)

        late = LateKeys()
        records, _ = await self.read_whole([changelog for p in partitions for changelog in self.changelogs(p)], restore,
                                           late)  # fmt: skip
        late.write_again(passes, "issues stage")
        starts: dict[int, int | str] = {}
        for tp in tps:
            offset = await self.consumer.committed(tp)
            start = offset if offset is not None and offset >= 0 else passes[tp.partition].next_offset
            await self.start_from(tp, OffsetAndMetadata(start, "") if start is not None else None)
            starts[tp.partition] = start if start is not None else "start"
        ends = {tp.partition: offset for tp, offset in (await self.consumer.end_offsets(tps)).items()}
        taken = await taken_over(passes, ends)
        await fence(aiokafka_producer(self.app), self.board_topic, self.settings.partitions, self.changelog, taken,
                    key=changelog_key, send=self.send_state)  # fmt: skip
        self.passes.update(passes)
        log.info("issues stage owns issue-updates partitions %s (from offsets %s): %d issue keys restored from %d "
                 "changelog records in %.1f s", partitions, starts, sum(p.keys() for p in passes.values()), records,
                 time.monotonic() - began)  # fmt: skip
