"""The board stage: reads ``<app>-reports`` with its own consumer (group ``<app>-board``) and keeps
the queue board of the board partitions it owns (``pipeline.core.board``), which the gauges, the
API and the wallboard read.

    <app>-reports, partition b ──getmany──▶ the board (partials, reports, fences, clock ticks)
        ├─▶ <app>-reports-changelog / -fences-changelog / -clock-changelog, partition b
        └─▶ rows (contributions of issue keys, metrics_minute) ──▶ ClickHouse
        ▲
        └── commit(offset) ◀── every record acknowledged, every row durable

Why not a Faust agent (as until December 2026): Faust's consumer was seen to stop delivering this
topic with messages waiting (the starve re-reads got it going, minutes later), as it stopped
delivering the issue updates for good (docs/architecture.md, step 6). With the board here,
Faust's consumer reads nothing: the worker's stages all run on :class:`~pipeline.stage_runner.StageRunner`.

State per board partition, restored whole from its three changelog partitions when the stage is
assigned it (the topics and records of the Faust tables ``reports``, ``fences`` and ``clock``, so
an upgraded worker restores them as they are): the partials and issue-key reports by key, the
epoch of each input partition's owner, the latest event time of each input partition. The board
is rebuilt from them, whole, at every take-over and hand-over, and swapped in at once: a scrape
sees the board before or after, never half of one. Replays are no-ops on the board: a partial
with the version the board has replaces it with itself, a report replaces itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.changelog import changelog_key
from pipeline.core.board import Board, MinutePartial, Partial, partial_kind, partial_minute
from pipeline.core.expiry import EXPIRE_AT_ONCE, ExpiryClock
from pipeline.core.facts import board_minutes
from pipeline.core.json_bytes import json_bytes
from pipeline.core.partitions import partition_of
from pipeline.core.wire import board_decoder, encode
from pipeline.kafka_edge import aiokafka_producer
from pipeline.settings import Settings
from pipeline.sink import Sink, SinkBatch
from pipeline.stage_runner import StageRunner

log = logging.getLogger("ccpulse.board")

# A board message holds one ingest (or issues) batch's partials, reports or clock ticks for one
# board partition; one per MESSAGE_SHARE events of CCPULSE_BATCH_SIZE makes a batch (2,000 by default).
MESSAGE_SHARE = 4


def board_changelogs(app_id: str) -> tuple[str, str, str]:
    """The board's changelogs (reports and partials, fences, clock): the Faust tables' topics."""
    return f"{app_id}-reports-changelog", f"{app_id}-fences-changelog", f"{app_id}-clock-changelog"


@dataclass
class BoardPartition:
    """What one board partition keeps besides its partials on the board: the epoch of each input
    partition's owner, the latest event time of each input partition, and the keys of reports of
    versions before December 2026 (deleted bit by bit). ``records`` holds the changelog's values by
    key only from a take-over's restore to the rebuild that decodes them onto the board: the board
    keeps each partial once, decoded (a hand-over rebuilds from the board's partials)."""

    records: dict[str, bytes] = field(default_factory=dict)
    fences: dict[int, int] = field(default_factory=dict)
    clocks: dict[int, int] = field(default_factory=dict)
    legacy: set[str] = field(default_factory=set)
    restored: bool = True  # restored from the changelog, not yet on the board


class BoardStage(StageRunner):
    def __init__(self, *, app: Any, settings: Settings, sink: Sink | None, board_topic: str,
                 clock: Callable[[], int]) -> None:  # fmt: skip
        super().__init__(app=app, settings=settings, sink=sink, stage="board", topic=board_topic,
                         max_records=max(1, settings.batch_size // MESSAGE_SHARE), linger=True)  # fmt: skip
        self.clock = clock  # the worker's now (µs): wall time, or the event clock of this board
        self.reports_log, self.fences_log, self.clocks_log = board_changelogs(settings.app_id)
        self.partitions: dict[int, BoardPartition] = {}  # per owned board partition
        self.board = Board()  # of the owned partitions, rebuilt whole at every hand-over
        self.legacy: list[str] = []  # keys of reports of versions before December 2026 (deleted bit by bit)
        self.ignored_reports = 0  # reports read in messages of such versions (the passes send partials now)
        self._expiry = ExpiryClock()

    def owned(self) -> list[int]:
        return sorted(self.partitions)

    def keys(self) -> int:
        return len(self.board.partials) + sum(len(each.legacy) for each in list(self.partitions.values()))

    def latest_event_us(self) -> int:
        """The latest event time any input partition has reached, over the owned board partitions."""
        return max((at for each in list(self.partitions.values()) for at in each.clocks.values()), default=0)

    def _partition_of(self, key: str) -> int:
        return partition_of(key.split("\x1f", 1)[0], self.settings.partitions)

    # ------------------------------------------------------------------ a batch
    async def process(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        board = self.board
        writes: dict[tuple[str, int], dict[bytes, bytes | None]] = defaultdict(dict)
        commit: dict[TopicPartition, OffsetAndMetadata] = {}
        changed: dict[str, Partial | None] = {}  # partials kept (None: gone), one write per key
        for tp, records in fetched.items():
            state = self.partitions.get(tp.partition)
            if state is None:  # handed over while this batch was fetched: its new owner reads it
                continue
            commit[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
            clocks_before, fences_before = dict(state.clocks), dict(state.fences)
            for record in records:
                message = board_decoder.decode(record.value or b"")
                for tick in message.ticks:
                    state.clocks[tick.source_partition] = max(state.clocks.get(tick.source_partition, 0), tick.at)
                for fence in message.fences:
                    state.fences[fence.source] = max(state.fences.get(fence.source, 0), fence.epoch)
                    changed.update((key, None) for key in board.fence(fence))
                found: list[Partial] = message.partials()
                for partial in found:
                    if board.apply_partial(partial):
                        changed[partial.key] = None if partial.empty else partial
                if message.reports:  # of a version before December 2026, still in flight at the upgrade
                    if not self.ignored_reports:
                        log.warning("board: reports from a worker of a version before December 2026 are ignored "
                                    "(the passes send sums now, and re-send them whole when they take their "
                                    "partitions over); stop every old worker (docs/operations.md)")  # fmt: skip
                    self.ignored_reports += len(message.reports)
            if state.clocks != clocks_before:
                writes[(self.clocks_log, tp.partition)][changelog_key(tp.partition)] = json_bytes(_named(state.clocks))
            if state.fences != fences_before:
                writes[(self.fences_log, tp.partition)][changelog_key(tp.partition)] = json_bytes(_named(state.fences))
        for key, kept in changed.items():
            self._put(writes, key, None if kept is None else encode(kept))
        now_us = self.clock()
        if now_us and self._expiry.due(now_us, time.monotonic()):
            self._expire(now_us, writes)
        batch = await self.rows_first(commit, self._rows(changed, now_us))
        producer = aiokafka_producer(self.app)
        for (topic, partition), written in writes.items():
            batch.deliveries += await self.send_state(producer, topic, partition, written)
        self.queue(batch)

    def _put(self, writes: dict[tuple[str, int], dict[bytes, bytes | None]], key: str, value: bytes | None) -> None:
        partition = self._partition_of(key)
        state = self.partitions.get(partition)
        if state is not None and value is None:
            state.legacy.discard(key)
        writes[(self.reports_log, partition)][changelog_key(key)] = value

    def _rows(self, changed: dict[str, Partial | None], now_us: int) -> SinkBatch:
        """The metrics_minute values of the minutes the batch changed (the passes write contributions)."""
        rows = SinkBatch()
        touched: set[tuple[str, str, int]] = set()
        # With a ClickHouse server several workers may write, and a queue's board can move between
        # them: a batch of its former owner, flushed late (an outage), would write its board's sums
        # over the new owner's with a later version. So there every minute is summed from
        # contributions in ClickHouse, each by the writer of its rows (docs/operations.md).
        single = self.settings.single_writer
        if single:
            touched.update((p.queue, p.channel, p.minute) for p in changed.values() if isinstance(p, MinutePartial))
            touched.update(partial_minute(key) for key, p in changed.items()
                           if p is None and partial_kind(key) is MinutePartial)  # fmt: skip
        held = frozenset(self.partitions) if single else frozenset()
        whole = lambda queue: partition_of(queue, self.settings.partitions) in held  # noqa: E731
        rows.minutes, rows.touched = board_minutes(self.board, touched, now_us, whole)
        return rows

    def _expire(self, now_us: int, writes: dict[tuple[str, int], dict[bytes, bytes | None]]) -> None:
        """Reports and minute partials no window can reach any more, and a few legacy reports."""
        board = self.board
        expired = board.expired_partials(now_us)[: self._expiry.at_once]
        self._expiry.ran(len(expired))
        for key in expired:
            board.forget(key)
            self._put(writes, key, None)
        for key in self.legacy[:EXPIRE_AT_ONCE]:
            self._put(writes, key, None)
        del self.legacy[:EXPIRE_AT_ONCE]

    # ------------------------------------------------------------------ hand-overs
    def forget(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def changelogs(self, partition: int) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for topic in (self.reports_log, self.fences_log, self.clocks_log)]

    def park(self, partition: int) -> bool:
        """A parked partition's partials stay on the board (and on the wallboard) until the next
        assignment: given back, nothing was lost meanwhile; given to another worker, they go then."""
        return self.set_aside(self.partitions, partition)

    def unpark(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> None:
        self.partitions[tp.partition] = self.parked_state.pop(tp.partition)

    async def handed_over(self) -> None:
        await self._rebuild()

    async def take_over(self, tps: list[TopicPartition]) -> None:
        assert self.consumer is not None
        parked_before = set(self.parked_state)
        tps = await self.keep_parked(tps)
        if not tps:
            if parked_before - set(self.partitions):  # parked partitions given to another worker: off the board
                await self._rebuild()
            return
        began = time.monotonic()
        partitions = [tp.partition for tp in tps]
        taken = {p: BoardPartition() for p in partitions}
        logs = [changelog for p in partitions for changelog in self.changelogs(p)]

        def restore(tp: TopicPartition, key: bytes | None, value: bytes | None) -> None:
            if key is not None:
                self._restore(taken[tp.partition], tp.topic, orjson.loads(key), value)

        records, _ = await self.read_whole(logs, restore)
        for tp, committed in (await self.committed_now(tps)).items():
            await self.start_from(tp, committed)
        held = sum(len(each.records) for each in taken.values())
        self.partitions.update(taken)
        await self._rebuild()
        log.info("board owns partitions %s: %d partials and reports restored from %d changelog records in %.1f s%s",
                 partitions, held, records, time.monotonic() - began,
                 f" ({len(self.legacy)} reports from before December 2026 ignored)"
                 if self.legacy else "")  # fmt: skip

    def _restore(self, state: BoardPartition, topic: str, key: Any, value: bytes | None) -> None:
        """One changelog record, in log order: a record by key, or a partition's fences or clocks."""
        if topic == self.reports_log:
            if isinstance(key, str) and value is None:
                state.records.pop(key, None)
            elif isinstance(key, str) and value is not None:
                state.records[key] = value
            return
        found = {int(source): int(at) for source, at in (orjson.loads(value) if value else {}).items()}
        if topic == self.fences_log:
            state.fences = found
        else:
            state.clocks = found

    async def _rebuild(self) -> None:
        """The board of the owned partitions, built off the event loop (:func:`rebuilt`) and swapped
        in whole. Summing every partial held takes seconds on a day's state, and the loop must not
        wait for it: it heartbeats for the worker's three consumer groups, and a member silent for
        the group session is evicted, which hands every partition over again (docs/operations.md,
        "Hand-overs")."""
        restored = frozenset(partition for partition, state in self.partitions.items() if state.restored)
        keep = (frozenset(self.partitions) | frozenset(self.parked_state)) - restored
        states: list[BoardPartition] = [*self.partitions.values(), *self.parked_state.values()]
        self.board, found = await asyncio.to_thread(rebuilt, states, self.board,
                                                    lambda key: self._partition_of(key) in keep)  # fmt: skip
        for state, legacy in zip(states, found, strict=True):
            if state.restored:  # on the board now: its records are let go
                state.records, state.legacy, state.restored = {}, legacy, False
        self.legacy = [key for state in states for key in state.legacy]


def rebuilt(states: list[BoardPartition], board: Board, keep: Callable[[str], bool]) -> tuple[Board, list[set[str]]]:
    """The board of these partitions: fences first, then the partials of ``board`` whose key
    ``keep`` says (the partitions it held and still does) and those of the restored partitions'
    records; and, per partition, the keys of reports of versions before December 2026 among its
    records (ignored). Reads only: a take-over cancelled meanwhile leaves the states as they were."""
    fresh, legacy = Board(), [set[str]() for _ in states]
    for state in states:
        for source, epoch in state.fences.items():
            fresh.fences[source] = max(fresh.fences.get(source, 0), epoch)
    for key, partial in board.partials.items():
        if keep(key):
            fresh.apply_partial(partial)
    for state, found in zip(states, legacy, strict=True):
        if not state.restored:
            continue
        for key, value in state.records.items():
            kind = partial_kind(key)
            if kind is not None:
                fresh.apply_partial(msgspec.msgpack.decode(value, type=kind))
            else:  # a report (contact, agent or issue key) of a version before December 2026
                found.add(key)
    return fresh, legacy


def _named(values: dict[int, int]) -> dict[str, int]:
    """As the Faust tables kept them: JSON objects keyed by the input partition's number."""
    return {str(source): at for source, at in sorted(values.items())}
