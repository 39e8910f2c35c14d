"""What one worker has applied from one source partition, and what it counted doing so.

Hazards this guards against:
- Faust sends table changelog records at once but commits source offsets only every few
  seconds, so after a SIGKILL the events since the last commit are replayed against state that
  already holds them. The record keeps the next source offset it has not applied yet; a replayed
  offset below it is not counted again, which makes re-delivery a no-op.
- Faust drops (and acknowledges) messages that reach a stream while its flow is paused around a
  rebalance or a recovery, and delivers them again after seeking back: a partition's messages
  can arrive with a hole that is filled later. So the record also keeps the offsets applied
  *beyond* a hole (``ahead``); the hole's messages still count when they come. A hole that is
  never filled (a transaction marker occupies an offset; or the message was lost) is given up
  after ``MAX_AHEAD`` later offsets, and reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_AHEAD = 2000  # offsets kept beyond a hole before the hole is given up


@dataclass
class Offsets:
    """The offsets of one partition applied so far: all below ``next_offset``, plus ``ahead``."""

    next_offset: int = 0  # a log that does not start at 0 (retention) begins with a hole, given up
    ahead: set[int] = field(default_factory=set)

    def is_new(self, offset: int) -> bool:
        return offset >= self.next_offset and offset not in self.ahead

    def applied(self, offset: int) -> list[int]:
        """Record ``offset``; returns the offsets of a hole given up (never delivered)."""
        if offset < self.next_offset:
            return []
        self.ahead.add(offset)
        given_up: list[int] = []
        if len(self.ahead) > MAX_AHEAD:
            lowest = min(self.ahead)
            given_up = list(range(self.next_offset, lowest))
            self.next_offset = lowest
        while self.next_offset in self.ahead:
            self.ahead.remove(self.next_offset)
            self.next_offset += 1
        return given_up

    def to_json(self) -> dict[str, Any]:
        return {"next_offset": self.next_offset, "ahead": sorted(self.ahead)}

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> Offsets:
        return cls(int(stored.get("next_offset", 0)), {int(o) for o in stored.get("ahead") or ()})


@dataclass
class PartitionProgress:
    offsets: Offsets = field(default_factory=Offsets)
    events_by_type: Counter[str] = field(default_factory=Counter)
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    latest_at: int = 0  # the greatest occurred_at of the partition's valid events
    keyed_otherwise: int = 0  # valid events whose Kafka key is not their owner key (intake.owner_key)

    @property
    def next_offset(self) -> int:
        return self.offsets.next_offset

    def is_new(self, offset: int) -> bool:
        """True when the message at ``offset`` has not been applied yet."""
        return self.offsets.is_new(offset)

    def applied(self, offset: int) -> list[int]:
        return self.offsets.applied(offset)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.offsets.to_json(),
            "events_by_type": dict(self.events_by_type),
            "invalid_by_reason": dict(self.invalid_by_reason),
            "latest_at": self.latest_at,
            **({"keyed_otherwise": self.keyed_otherwise} if self.keyed_otherwise else {}),
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> PartitionProgress:
        if not stored:
            return cls()
        return cls(
            offsets=Offsets.from_json(stored),
            events_by_type=Counter(stored.get("events_by_type") or {}),
            invalid_by_reason=Counter(stored.get("invalid_by_reason") or {}),
            latest_at=int(stored.get("latest_at", 0)),
            keyed_otherwise=int(stored.get("keyed_otherwise", 0)),
        )


def total(progress: list[PartitionProgress]) -> PartitionProgress:
    """The sum over partitions (``next_offset`` has no meaning in a sum and stays 0)."""
    summed = PartitionProgress()
    for one in progress:
        summed.events_by_type.update(one.events_by_type)
        summed.invalid_by_reason.update(one.invalid_by_reason)
        summed.keyed_otherwise += one.keyed_otherwise
    return summed


@dataclass
class StageProgress:
    """Per partition of an internal topic: the next offset not applied yet, and what was counted."""

    offsets: Offsets = field(default_factory=Offsets)
    duplicates: int = 0
    conflicts: int = 0

    def is_new(self, offset: int) -> bool:
        return self.offsets.is_new(offset)

    def applied(self, offset: int) -> list[int]:
        return self.offsets.applied(offset)

    def to_json(self) -> dict[str, Any]:
        return {**self.offsets.to_json(), "duplicates": self.duplicates, "conflicts": self.conflicts}

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> StageProgress:
        stored = stored or {}
        return cls(Offsets.from_json(stored), int(stored.get("duplicates", 0)), int(stored.get("conflicts", 0)))
