"""The queue board: what every source currently contributes to a set of queues, and the
metrics and live state that follow, for any ``now``.

A *report* is the whole current contribution of one source (a contact, an issue key or an
agent) to one queue. The board keeps the latest report per (queue, source) and replaces it
when a new one comes: the minute buckets, the waiting contacts and the agents are always the
sum of the current reports. Applying a report twice, or an old report again followed by the
current one, leaves the board exact; nothing here depends on arrival order.

Reports are the authoritative state (persisted); the buckets are derived and rebuilt from
them on start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from msgspec import Struct

from pipeline.core.counts import Counts
from pipeline.core.windows import WINDOWS, minute_of, window_minutes

WAITING_HORIZON_US = 7 * 86_400 * 1_000_000  # "offered at most 7 days before now"
# Reports whose every minute is older than this before now cannot reach any window (today is
# at most 25 hours long, the 1h window reaches an hour before midnight) and are not waiting.
REPORT_RETENTION_US = 27 * 3600 * 1_000_000
# The board holds a minute's sum whole (every report that contributes to it) only while no report
# contributing to it can have expired: from an hour after the expiry horizon on (the hour covers
# a clock read a little earlier than the one the last expiry used).
WHOLE_MARGIN_MINUTES = 60


class Report(Struct, array_like=True, frozen=True):
    source: str  # "contact:<id>", "issue:<key>", "agent:<id>"
    queue: str
    minutes: tuple[tuple[str, int, tuple[int, ...]], ...] = ()  # (channel, minute, counts)
    waiting: tuple[tuple[str, int], ...] = ()  # (channel, offered_at)
    agent_state: str | None = None
    # For the ClickHouse sink: the source's own revision (a counter that grows with every step,
    # so a later report of a source always has a larger version), and the (channel, minute)s the
    # source reported to this queue before but contributes nothing to now (their rows go).
    version: int = 0
    left: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.queue}\x1f{self.source}"

    @property
    def empty(self) -> bool:
        return not self.minutes and not self.waiting and self.agent_state is None

    @property
    def latest_minute(self) -> int:
        return max((minute for _, minute, _ in self.minutes), default=-(2**62))


@dataclass
class QueueChannel:
    minutes: dict[int, Counts] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)  # source -> offered_at


@dataclass
class Board:
    reports: dict[str, Report] = field(default_factory=dict)
    lines: dict[tuple[str, str], QueueChannel] = field(default_factory=dict)  # (queue, channel)
    agents: dict[str, dict[str, str]] = field(default_factory=dict)  # queue -> agent source -> state

    def apply(self, report: Report) -> None:
        old = self.reports.get(report.key)
        if old == report:
            return
        if old is not None:
            self._account(old, -1)
        if report.empty:
            self.reports.pop(report.key, None)
        else:
            self.reports[report.key] = report
            self._account(report, +1)

    def load(self, reports: Iterable[Report]) -> None:
        """Rebuild from persisted reports (after a restart)."""
        for report in reports:
            self.apply(report)

    def _account(self, report: Report, sign: int) -> None:
        for channel, minute, values in report.minutes:
            line = self.lines.get((report.queue, channel))
            if line is None:
                line = self.lines[(report.queue, channel)] = QueueChannel()
            counts = line.minutes.get(minute)
            if counts is None:
                counts = line.minutes[minute] = Counts()
            counts.add(Counts.from_tuple(values), sign)
            if counts.is_zero():
                del line.minutes[minute]
        for channel, offered_at in report.waiting:
            line = self.lines.setdefault((report.queue, channel), QueueChannel())
            if sign > 0:
                line.waiting[report.source] = offered_at
            else:
                line.waiting.pop(report.source, None)
        if sign < 0:
            for channel in {channel for channel, _, _ in report.minutes} | {channel for channel, _ in report.waiting}:
                line = self.lines.get((report.queue, channel))
                if line is not None and not line.minutes and not line.waiting:
                    del self.lines[(report.queue, channel)]  # nothing contributes to it any more
        if report.agent_state is not None:
            states = self.agents.setdefault(report.queue, {})
            if sign > 0:
                states[report.source] = report.agent_state
            else:
                states.pop(report.source, None)
                if not states:
                    del self.agents[report.queue]

    def expired(self, now_us: int) -> list[Report]:
        """Reports that can no longer reach any window and wait for nothing (to delete)."""
        horizon = minute_of(now_us - REPORT_RETENTION_US)
        return [
            report
            for report in self.reports.values()
            if report.agent_state is None and not report.waiting and report.latest_minute < horizon
        ]

    def minute(self, queue: str, channel: str, minute: int) -> Counts | None:
        """The sum of the current reports for one minute (None: nothing contributes to it)."""
        line = self.lines.get((queue, channel))
        return line.minutes.get(minute) if line is not None else None

    # --------------------------------------------------------------------------------------
    def window_counts(self, now_us: int, zone: ZoneInfo) -> Iterator[tuple[str, str, str, Counts]]:
        """(queue, channel, window, counts) for every queue and channel the board has seen."""
        ranges = window_minutes(now_us, zone)
        for (queue, channel), line in sorted(self.lines.items()):
            sums = {window: Counts() for window in WINDOWS}
            for minute, counts in line.minutes.items():
                for window, (first, last) in ranges.items():
                    if first <= minute <= last:
                        sums[window].add(counts)
            for window in WINDOWS:
                yield queue, channel, window, sums[window]

    def waiting(self, now_us: int) -> Iterator[tuple[str, str, int, int | None]]:
        """(queue, channel, waiting, oldest wait in µs or None) per queue and channel."""
        for (queue, channel), line in sorted(self.lines.items()):
            since = [at for at in line.waiting.values() if now_us - at <= WAITING_HORIZON_US]
            yield queue, channel, len(since), (now_us - min(since)) if since else None

    def agents_by_state(self) -> Iterator[tuple[str, str, int]]:
        """(queue, state, agents) for every state but offline."""
        for queue, states in sorted(self.agents.items()):
            tally: dict[str, int] = {}
            for state in states.values():
                if state != "offline":
                    tally[state] = tally.get(state, 0) + 1
            for state, agents in sorted(tally.items()):
                yield queue, state, agents


def whole_from_minute(now_us: int) -> int:
    """The first minute whose sum the board holds whole at ``now`` (see WHOLE_MARGIN_MINUTES):
    earlier minutes may have lost expired reports, so their sums are taken from ClickHouse."""
    return minute_of(now_us - REPORT_RETENTION_US) + WHOLE_MARGIN_MINUTES


def minutes_payload(channel: str, minutes: dict[int, Counts]) -> tuple[tuple[str, int, tuple[int, ...]], ...]:
    return tuple((channel, minute, counts.as_tuple()) for minute, counts in sorted(minutes.items()))


__all__ = ["Board", "Report", "minutes_payload", "whole_from_minute"]
