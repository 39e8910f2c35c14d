"""What one worker has applied from one source partition, and what it counted doing so.

Hazard this guards against: Faust sends table changelog records at once but commits source
offsets only every few seconds, so after a SIGKILL the events since the last commit are
replayed against state that already holds them. The record keeps the next source offset it
has not applied yet; a replayed offset below it is skipped, which makes re-delivery a no-op.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartitionProgress:
    next_offset: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    latest_at: int = 0  # the greatest occurred_at of the partition's valid events

    def is_new(self, offset: int) -> bool:
        """True when the message at ``offset`` has not been applied yet."""
        return offset >= self.next_offset

    def applied(self, offset: int) -> None:
        self.next_offset = max(self.next_offset, offset + 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "next_offset": self.next_offset,
            "events_by_type": dict(self.events_by_type),
            "invalid_by_reason": dict(self.invalid_by_reason),
            "latest_at": self.latest_at,
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> PartitionProgress:
        if not stored:
            return cls()
        return cls(
            next_offset=int(stored.get("next_offset", 0)),
            events_by_type=Counter(stored.get("events_by_type") or {}),
            invalid_by_reason=Counter(stored.get("invalid_by_reason") or {}),
            latest_at=int(stored.get("latest_at", 0)),
        )


def total(progress: list[PartitionProgress]) -> PartitionProgress:
    """The sum over partitions (``next_offset`` has no meaning in a sum and stays 0)."""
    summed = PartitionProgress()
    for one in progress:
        summed.events_by_type.update(one.events_by_type)
        summed.invalid_by_reason.update(one.invalid_by_reason)
    return summed


@dataclass
class StageProgress:
    """Per partition of an internal topic: the next offset not applied yet, and what was counted."""

    next_offset: int = 0
    duplicates: int = 0
    conflicts: int = 0

    def is_new(self, offset: int) -> bool:
        return offset >= self.next_offset

    def applied(self, offset: int) -> None:
        self.next_offset = max(self.next_offset, offset + 1)

    def to_json(self) -> dict[str, Any]:
        return {"next_offset": self.next_offset, "duplicates": self.duplicates, "conflicts": self.conflicts}

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> StageProgress:
        stored = stored or {}
        return cls(int(stored.get("next_offset", 0)), int(stored.get("duplicates", 0)), int(stored.get("conflicts", 0)))
