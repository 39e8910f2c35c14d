"""Adapters from contact-center platforms' own events to the event contract (docs/sources.md).

Each format converts a stream of the platform's records, one at a time and in order, into
contract events; nothing here does I/O. ``ccpulse convert`` and ``ccpulse produce --from`` use
them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, Protocol

from pipeline.sources.amazon_connect import ContactRecords
from pipeline.sources.asterisk import Outcome, QueueLog
from pipeline.sources.genesys import DetailEvents
from pipeline.sources.twilio import TaskRouter

FORMATS = ("asterisk-queue-log", "amazon-connect", "twilio-taskrouter", "genesys-cloud")


class Source(Protocol):
    """A platform's records, converted one line at a time, in order."""

    def line(self, raw: bytes | str) -> Outcome: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, saved: dict[str, Any]) -> None: ...


@dataclass
class Summary:
    """What a conversion did, for its closing line on stderr."""

    lines: int = 0
    events: int = 0
    converted: int = 0  # lines that gave at least one event
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.lines += 1
        self.events += len(outcome.events)
        if outcome.events:
            self.converted += 1
        elif outcome.rejected:
            self.rejected[outcome.rejected] += 1
        else:
            self.skipped[outcome.skipped or "nothing"] += 1

    def line(self, name: str) -> str:
        def listed(counts: Counter[str]) -> str:
            return f" ({', '.join(f'{n} {count}' for n, count in counts.most_common())})" if counts else ""

        return (f"{name}: {self.lines:,} lines: {self.converted:,} converted into {self.events:,} events, "
                f"{sum(self.skipped.values()):,} skipped{listed(self.skipped)}, "
                f"{sum(self.rejected.values()):,} rejected{listed(self.rejected)}")  # fmt: skip


def converter(name: str, zone: tzinfo) -> Source:
    """``zone``: the time zone of a format whose times carry none (a queue_log table export)."""
    if name == "asterisk-queue-log":
        return QueueLog(zone)
    if name == "amazon-connect":
        return ContactRecords()
    if name == "twilio-taskrouter":
        return TaskRouter()
    if name == "genesys-cloud":
        return DetailEvents()
    raise ValueError(f"unknown format {name!r}: expected one of {', '.join(FORMATS)}")


def convert(name: str, lines: Iterable[bytes], zone: tzinfo) -> Iterator[tuple[int, Outcome]]:
    """(line number, outcome) for every line of a source in ``name``'s format."""
    source = converter(name, zone)
    for number, line in enumerate(lines, start=1):
        yield number, source.line(line)


__all__ = ["FORMATS", "Outcome", "Source", "Summary", "convert", "converter"]
