"""Which offset each partition may commit: the first one whose work is not finished yet.

A message is *finished* when everything it caused is durable: state written, messages sent, and
(with the ClickHouse sink) its rows in ClickHouse. Committing past an unfinished message loses
that work for good if the worker dies: the restarted worker starts after it.

Faust commits the offsets its streams acknowledged, and several of its paths acknowledge a
message whose work was never done (faust-streaming 0.15, found by the outage-and-kill test):
- a message that reaches a stream after a rebalance began is skipped *and acknowledged*; Faust
  delivers it again from the last commit, but its early acknowledgement can carry the commit
  past the copy that is still being processed;
- with a committed offset ``c``, an acknowledged ``c + 1`` lets Faust commit past ``c`` although
  ``c`` is not acknowledged (its head check is ``min(acked) - c > 1``);
- a batch whose agent raises or is cancelled is acknowledged when the batch ends.

So the worker keeps its own account, per partition and per consumer generation: the offsets it
has *received* (in order, as Faust delivers them) and those *finished*; it commits up to the first
offset not finished. An offset never delivered (a transaction marker, a record removed by
retention, a message Faust skipped and never delivered again) leaves a hole; after ``MAX_MISSING``
later offsets the hole is given up, reported, and the commit moves on.

Faust also loses messages outright (measured after a restart: 45, then 739, then 1,024 messages
of every input partition never reached the agents, from the committed offset or mid-stream). So
when a hole opens, the gate asks, once per hole, for the partition to be read again from the
hole's start (``received`` returns the offset); what comes twice is applied once. A transaction
marker costs one such re-read of a few messages, and its hole is given up later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Partition = Any  # a topic partition (Faust's TP); any hashable in tests

MAX_MISSING = 2000  # later offsets received before a hole in delivery is given up


@dataclass
class PartitionCommits:
    """One partition in one generation."""

    next_commit: int | None  # the first offset not finished; None until the first delivery
    expected: int | None = None  # the offset the next delivery should carry
    finished: set[int] = field(default_factory=set)  # finished offsets at or beyond next_commit
    missing: list[tuple[int, int]] = field(default_factory=list)  # holes [lo, hi), ascending
    reread_below: int = -1  # a re-read asked for covers the holes below this offset
    reread_at: float = 0.0  # when the last re-read was asked for
    assigned: bool = False  # the consumer has sought to the committed offset: commits may start
    active_at: float = 0.0  # when a message last came (or the partition was assigned, or nudged)

    def rebase(self, start: int | None) -> None:
        """The committed offset is known now (messages may have come first): the account starts
        there, and what lies between it and the first delivery is a hole until delivered."""
        self.assigned = True
        if start is None:
            return
        if self.next_commit is None:
            self.next_commit = start
        elif start < self.next_commit:
            self.missing.insert(0, (start, self.next_commit))
            self.next_commit = start

    def received(self, offset: int) -> int | None:
        """Record a delivery; returns an offset to read the partition again from when a hole
        opened (asked once per hole)."""
        if self.next_commit is None:
            self.next_commit = offset
        if self.expected is None:
            self.expected = self.next_commit
        if offset >= self.expected:
            if offset > self.expected:
                self.missing.append((self.expected, offset))
            self.expected = offset + 1
        elif self.missing:
            self._delivered_late(offset)
        if self.assigned and self.missing and self.missing[0][0] >= self.reread_below:
            self.reread_below = self.expected
            return self.missing[0][0]
        return None

    def _delivered_late(self, offset: int) -> None:
        for index, (lo, hi) in enumerate(self.missing):
            if lo <= offset < hi:
                pieces = [(a, b) for a, b in ((lo, offset), (offset + 1, hi)) if a < b]
                self.missing[index : index + 1] = pieces
                return

    def finish(self, offset: int) -> None:
        if not self.assigned or (self.next_commit is not None and offset >= self.next_commit):
            self.finished.add(offset)

    def committable(self) -> tuple[int | None, list[tuple[int, int]]]:
        """The offset to commit (the first not finished), and the holes given up on the way."""
        if self.next_commit is None or not self.assigned:
            return None, []
        given_up: list[tuple[int, int]] = []
        while True:
            if self.next_commit in self.finished:
                self.finished.remove(self.next_commit)
                self.next_commit += 1
                continue
            hole = self._hole_at(self.next_commit)
            if hole is not None and self.expected is not None and self.expected - hole[1] > MAX_MISSING:
                self.missing.remove(hole)
                given_up.append((self.next_commit, hole[1]))
                self.finished = {o for o in self.finished if o >= hole[1]}
                self.next_commit = hole[1]
                continue
            return self.next_commit, given_up

    def _hole_at(self, offset: int) -> tuple[int, int] | None:
        for lo, hi in self.missing:
            if lo <= offset < hi:
                return lo, hi
            if lo > offset:
                return None
        return None


@dataclass
class CommitGate:
    """The commit account of every partition this worker is assigned, for one generation."""

    generation: int | None = None
    partitions: dict[Partition, PartitionCommits] = field(default_factory=dict)

    def assign(self, generation: int, starts: Mapping[Partition, int | None], now: float = 0.0) -> None:
        """The consumer has sought each partition to its committed offset (None: no commit yet,
        the account starts at the first offset delivered). Messages of this generation that came
        before are kept in the account."""
        self._follow(generation)
        for tp, start in starts.items():
            partition = self.partitions.setdefault(tp, PartitionCommits(next_commit=None))
            partition.rebase(start)
            partition.active_at = now

    def received(self, generation: int | None, tp: Partition, offsets: Iterable[int], now: float = 0.0) -> int | None:
        """Record deliveries; returns an offset to seek ``tp`` back to (see ``PartitionCommits``)."""
        if generation is not None and (self.generation is None or generation > self.generation):
            self._follow(generation)
        if generation != self.generation:
            return None  # a message of an earlier generation: Faust delivers it again
        partition = self.partitions.setdefault(tp, PartitionCommits(next_commit=None))
        partition.active_at = now
        seek_to = None
        for offset in offsets:
            asked = partition.received(offset)
            seek_to = asked if asked is not None else seek_to
        if seek_to is not None:
            partition.reread_at = now
        return seek_to

    def finished(self, generation: int | None, tp: Partition, offsets: Iterable[int]) -> None:
        partition = self.partitions.get(tp) if generation == self.generation else None
        if partition is not None:
            for offset in offsets:
                partition.finish(offset)

    def starved(self, ends: Mapping[Partition, int], now: float, quiet_seconds: float) -> list[tuple[Partition, int]]:
        """Partitions with messages waiting (``ends``: their high-water marks) of which nothing
        came for ``quiet_seconds``, with the offset to read them from. Faust's consumer was seen to
        stop delivering one partition after a restart while the others flowed; reading it again
        (a seek) gets it going. Asked at most once per ``quiet_seconds`` per partition. Also the
        partitions with a hole that a re-read was asked for ``quiet_seconds`` ago and that is still
        open (the re-read's messages were lost too), from the hole's start."""
        starved = []
        for tp, partition in self.partitions.items():
            if partition.missing and partition.reread_below >= 0 and now - partition.reread_at >= quiet_seconds:
                # a hole a re-read was asked for and that is still open: ask again (a hole
                # implies an expected offset: holes open only behind one)
                partition.reread_at = partition.active_at = now
                partition.reread_below = partition.expected or 0
                starved.append((tp, partition.missing[0][0]))
                continue
            position = partition.expected if partition.expected is not None else partition.next_commit
            if position is None or not partition.assigned or ends.get(tp, 0) <= position:
                continue
            if now - partition.active_at >= quiet_seconds:
                partition.active_at = now
                starved.append((tp, position))
        return starved

    def revoked(self, tps: Iterable[Partition]) -> None:
        for tp in tps:
            self.partitions.pop(tp, None)

    def describe(self) -> dict[str, object]:
        """For the stall report: where each account stands."""
        return {
            str(tp): {"next_commit": p.next_commit, "expected": p.expected, "finished_ahead": len(p.finished),
                      "holes": p.missing[:5]}
            for tp, p in self.partitions.items()
        }  # fmt: skip

    def _follow(self, generation: int) -> None:
        if generation != self.generation:
            self.generation = generation
            self.partitions = {}

    def committable(self, tp: Partition) -> tuple[int | None, list[tuple[int, int]]]:
        partition = self.partitions.get(tp)
        return partition.committable() if partition is not None else (None, [])
