"""The queue board: what every source currently contributes to a set of queues, and the
metrics and live state that follow, for any ``now``.

Two kinds of contribution, both replaced whole by a newer one, so the minute buckets, the
waiting contacts and the agents are always the sum of the current ones:

- a *report* is the whole current contribution of one source (an issue key; in the in-memory
  :class:`~pipeline.core.engine.Engine` also a contact or an agent) to one queue, kept per
  (queue, source); applying a report twice, or an old one again followed by the current one,
  leaves the board exact;
- a *partial* is what one input partition's contacts pass sums for one (queue, channel, minute)
  (:class:`MinutePartial`) or holds live for one queue — its waiting contacts and its agents by
  state (:class:`LivePartial`) — with a *version*, the input offset the pass had reached. The
  board keeps the greatest version per key (ties: the later), so a replay that sends older sums
  again changes nothing (``pipeline/core/sums.py``).

Reports and partials are the authoritative state (persisted); the buckets are derived and
rebuilt from them on start.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from msgspec import Struct

from pipeline.core.agent_time import SLOT, TIMED
from pipeline.core.counts import Counts
from pipeline.core.windows import WINDOWS, Day, minute_of, window_minutes

DAY_US = 86_400 * 1_000_000
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


def issue_source(partition: int) -> int:
    """The partials' source number of an issue-updates partition (input partitions are 0, 1, ...)."""
    return -1 - partition


class MinutePartial(Struct, array_like=True, frozen=True, gc=False):
    """One input partition's sum of its contacts' contributions (or one issue-updates partition's
    sum of its issue keys') to one minute of a queue and channel.

    Not tracked by Python's collector (``gc=False``), as every kind of partial: numbers, strings
    and tuples of them, in no cycle. The board holds one per key, the passes send new versions all
    the time, and they were half of the objects a full collection walked in bench.passes' state
    (docs/performance.md, "What the collector walks")."""

    source: int  # the input partition, or issue_source(issue-updates partition)
    queue: str
    channel: str
    minute: int
    counts: tuple[int, ...] = ()  # (): nothing of that partition contributes to the minute now
    epoch: int = 0  # when the pass's owner took the partition over (µs): a later owner fences the earlier
    version: int = 0  # the partition's next input offset when the pass sent it

    @property
    def key(self) -> str:
        return f"{self.queue}\x1f\x00p{self.source}\x1f{self.channel}\x1f{self.minute}"

    @property
    def empty(self) -> bool:
        return not self.counts


class LivePartial(Struct, array_like=True, frozen=True, gc=False):  # untracked: see MinutePartial
    """One input partition's live state of one queue: its waiting contacts and its agents by state."""

    source: int
    queue: str
    waiting: tuple[tuple[str, int], ...] = ()  # (channel, offered_at) per waiting contact, sorted
    agents: tuple[tuple[str, int], ...] = ()  # (state, agents), every state but offline
    epoch: int = 0
    version: int = 0
    # (state, since) of each of its agents in a timed state: sent by workers before the board took
    # the open intervals from each AgentPartial (a queue's whole list on every agent event cost
    # freshness, docs/performance.md); read as it decodes, never used. Last: older partials decode as ().
    timing: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.queue}\x1f\x00live{self.source}"

    @property
    def empty(self) -> bool:
        return not self.waiting and not self.agents


class AgentDayPartial(Struct, array_like=True, frozen=True, gc=False):  # untracked: see MinutePartial
    """One input partition's sum of its agents' closed intervals in one day of a queue (the
    queue's own day): µs per timed state (``agent_time.TIMED``)."""

    source: int
    queue: str
    day: int  # the day's start, µs
    seconds: tuple[int, ...] = ()  # (): nothing now
    epoch: int = 0
    version: int = 0

    @property
    def key(self) -> str:
        return f"{self.queue}\x1f\x00d{self.source}\x1f{self.day}"

    @property
    def empty(self) -> bool:
        return not self.seconds


class AgentRecentPartial(Struct, array_like=True, frozen=True, gc=False):  # untracked: see MinutePartial
    """One agent's closed intervals in one queue that ended within the last hour or so, from the
    input partition that holds its state events: the ``15m`` and ``1h`` windows' agent time is their
    overlap with the window, taken at read time."""

    source: int
    queue: str
    agent_id: str
    intervals: tuple[tuple[int, int, int], ...] = ()  # (start, end, timed state's slot), sorted
    epoch: int = 0
    version: int = 0

    @property
    def key(self) -> str:
        return f"{self.queue}\x1f\x00r{self.source}\x1f{self.agent_id}"

    @property
    def empty(self) -> bool:
        return not self.intervals


class WaitingPartial(Struct, array_like=True, frozen=True, gc=False):  # untracked: see MinutePartial
    """One contact waiting in one queue, from the input partition that holds it: its channel and
    when it was offered (None: it waits no more). Sent when a contact starts or stops waiting, so a
    live event costs the contacts it changes: a queue's whole list in its ``LivePartial`` on every
    change cost 195 µs at 1,000 waiting and 3.4 ms at 10,000 (docs/performance.md, "A live worker
    with a day's state"). Workers before 2026-12-06 sent the list; the board still reads it."""

    source: int
    queue: str
    contact: str  # the pass's key of the contact
    channel: str = ""
    offered_at: int | None = None
    epoch: int = 0
    version: int = 0

    @property
    def key(self) -> str:
        return f"{self.queue}\x1f\x00wait{self.source}\x1f{self.contact}"

    @property
    def empty(self) -> bool:
        return self.offered_at is None


class AgentPartial(Struct, array_like=True, frozen=True, gc=False):  # untracked: see MinutePartial
    """One agent, from the input partition that holds its state events: its state now and its
    closed time per state in each of its recent days (the worker's day: ``CCPULSE_TIMEZONE``)."""

    source: int
    agent_id: str
    state: str = ""  # "": the agent is forgotten (offline past the retention)
    since: int = 0
    queues: tuple[str, ...] = ()
    reason: str | None = None
    days: tuple[tuple[int, tuple[int, ...]], ...] = ()  # (day start, µs per timed state), sorted
    epoch: int = 0
    version: int = 0

    @property
    def key(self) -> str:
        return f"{self.agent_id}\x1f\x00agent{self.source}"

    @property
    def empty(self) -> bool:
        return not self.state


class AgentWorkPartial(Struct, array_like=True, frozen=True, gc=False):  # untracked: see MinutePartial
    """What one input partition's contacts say of one agent: the contacts it is on now (answered
    by it, not ended) and the contacts it handled in each recent day (count, handle µs)."""

    source: int
    agent_id: str
    contacts: tuple[tuple[str, str, str, int], ...] = ()  # (contact_id, queue, channel, answered_at)
    days: tuple[tuple[int, int, int], ...] = ()  # (day start, handled, handle µs), sorted
    epoch: int = 0
    version: int = 0

    @property
    def key(self) -> str:
        return f"{self.agent_id}\x1f\x00work{self.source}"

    @property
    def empty(self) -> bool:
        return not self.contacts and not self.days


AgentSide = AgentDayPartial | AgentRecentPartial | AgentPartial | AgentWorkPartial
QueuePartial = LivePartial | WaitingPartial  # a queue's live state: its agents by state, its waiting contacts
Partial = (MinutePartial | LivePartial | WaitingPartial | AgentDayPartial | AgentRecentPartial | AgentPartial
           | AgentWorkPartial)  # fmt: skip
PARTIAL_KINDS: tuple[tuple[str, type[Partial]], ...] = (
    ("\x00p", MinutePartial), ("\x00live", LivePartial), ("\x00d", AgentDayPartial), ("\x00r", AgentRecentPartial),
    ("\x00agent", AgentPartial), ("\x00work", AgentWorkPartial), ("\x00wait", WaitingPartial),
)  # fmt: skip


class Fence(Struct, array_like=True, frozen=True):
    """A new owner of an input partition: the partials of earlier owners go (their state may have
    been lost in a crash, or a zombie's may never reach the changelog); the new owner sends every
    partial it holds right after (``ContactPass.everything``)."""

    source: int
    epoch: int


def partial_kind(key: str) -> type[Partial] | None:
    """Which partial a stored board key holds (None: a report)."""
    _, _, rest = key.partition("\x1f")
    for prefix, kind in PARTIAL_KINDS:
        if rest.startswith(prefix):
            return kind
    return None


def partial_minute(key: str) -> tuple[str, str, int]:
    """The (queue, channel, minute) of a minute partial's key."""
    queue, _, channel, minute = key.split("\x1f")
    return queue, channel, int(minute)


@dataclass
class QueueChannel:
    minutes: dict[int, Counts] = field(default_factory=dict)
    # minute // 60 -> the sum of its minutes, taken when a window read the whole hour and dropped
    # when one of its minutes changes (none kept for an hour without minutes): a window reads its
    # whole hours here and only its edges' minutes one by one. A day's window read ~1,500 minutes
    # per queue and channel, on every scrape and every wallboard tick (docs/performance.md, "A
    # scrape with a day's state"); a change costs one dict.pop on the board's path.
    hours: dict[int, Counts] = field(default_factory=dict)
    waiting: dict[str, tuple[int, ...]] = field(default_factory=dict)  # source or partial -> offered_at

    def window(self, first: int, last: int) -> Counts:
        """The sum of the minutes from ``first`` to ``last``, both included."""
        whole_from, whole_to = -(-first // 60), (last + 1) // 60  # the hours wholly inside: [from, to)
        if whole_from >= whole_to:
            return self._add_minutes(Counts(), range(first, last + 1))
        total = self._add_minutes(Counts(), range(first, whole_from * 60))
        self._add_minutes(total, range(whole_to * 60, last + 1))
        for hour in range(whole_from, whole_to):
            summed = self._hour(hour)
            if summed is not None:
                total.add(summed)
        return total

    def _hour(self, hour: int) -> Counts | None:
        """The hour's sum, taken now if not kept (None: none of its minutes holds anything)."""
        summed = self.hours.get(hour)
        if summed is None:
            summed = self._add_minutes(Counts(), range(hour * 60, hour * 60 + 60))
            if summed.is_zero():
                return None
            self.hours[hour] = summed
        return summed

    def _add_minutes(self, total: Counts, minutes: range) -> Counts:
        found = self.minutes
        for minute in minutes:
            counts = found.get(minute)
            if counts is not None:
                total.add(counts)
        return total


@dataclass
class RecentSums:
    """One queue's recent closed intervals summed over the 1h and 15m windows that begin at
    ``hour`` and ``quarter`` (µs per timed state), each interval counted up to its end."""

    hour: int
    quarter: int
    in_hour: list[int] = field(default_factory=lambda: [0] * len(TIMED))
    in_quarter: list[int] = field(default_factory=lambda: [0] * len(TIMED))
    latest_end: int = -(2**62)  # at least the latest end among the intervals added (never lowered)

    def add(self, intervals: Iterable[tuple[int, int, int]], sign: int, until: int = 2**62) -> None:
        """Add (``sign`` 1) or take away (-1) intervals, each counted up to its end or ``until``."""
        hour, quarter = self.hour, self.quarter
        for begun, ended, slot in intervals:
            if ended > until:
                ended = until
            if ended > hour and ended > begun:
                self.in_hour[slot] += sign * (ended - (begun if begun > hour else hour))
                if ended > quarter:
                    self.in_quarter[slot] += sign * (ended - (begun if begun > quarter else quarter))
            if sign > 0 and ended > self.latest_end:
                self.latest_end = ended


@dataclass
class Board:
    reports: dict[str, Report] = field(default_factory=dict)
    partials: dict[str, Partial] = field(default_factory=dict)
    fences: dict[int, int] = field(default_factory=dict)  # input partition -> its owner's epoch
    lines: dict[tuple[str, str], QueueChannel] = field(default_factory=dict)  # (queue, channel)
    # queue -> agent source (or partial) -> (state, agents)
    agents: dict[str, dict[str, tuple[tuple[str, int], ...]]] = field(default_factory=dict)
    # time in state (issue 22): queue -> day start -> µs per timed state, of closed intervals
    agent_days: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    # the open intervals, from each AgentPartial: queue -> timed state -> each agent's since, sorted
    timing: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    # queue -> (source, agent) -> recent closed intervals
    recent: dict[str, dict[tuple[int, str], tuple[tuple[int, int, int], ...]]] = field(default_factory=dict)
    # queue -> its recent intervals' µs in the 1h and 15m windows last read (recent_time), kept as they change
    _recent_sums: dict[str, RecentSums] = field(default_factory=dict)
    agent_states: dict[str, dict[int, AgentPartial]] = field(default_factory=dict)  # agent -> source -> it
    agent_work: dict[str, dict[int, AgentWorkPartial]] = field(default_factory=dict)  # agent -> source -> it

    def apply_partial(self, partial: Partial) -> bool:
        """Keep ``partial`` unless it comes from an owner fenced off, or the board has a greater
        (epoch, version) for its key; True when kept."""
        if partial.epoch < self.fences.get(partial.source, 0):
            return False
        key = partial.key
        old = self.partials.get(key)
        if old is not None:
            if (old.epoch, old.version) > (partial.epoch, partial.version):
                return False
            self._partial(old, -1)
        if partial.empty:
            self.partials.pop(key, None)
        else:
            self.partials[key] = partial
            self._partial(partial, +1)
        return True

    def fence(self, fence: Fence) -> list[str]:
        """Fence off the owners of ``fence.source`` before ``fence.epoch``: the keys of their partials,
        dropped (to delete)."""
        if fence.epoch <= self.fences.get(fence.source, 0):
            return []
        self.fences[fence.source] = fence.epoch
        dropped = [key for key, partial in self.partials.items()
                   if partial.source == fence.source and partial.epoch < fence.epoch]  # fmt: skip
        for key in dropped:
            self.forget(key)
        return dropped

    def forget(self, key: str) -> None:
        """Drop a partial (expired: its minute reaches no window any more)."""
        old = self.partials.pop(key, None)
        if old is not None:
            self._partial(old, -1)

    def _partial(self, partial: Partial, sign: int) -> None:
        if isinstance(partial, MinutePartial):
            self._count(partial.queue, partial.channel, partial.minute, partial.counts, sign)
            return
        if isinstance(partial, AgentDayPartial | AgentRecentPartial | AgentPartial | AgentWorkPartial):
            self._agent_side(partial, sign)
            return
        if isinstance(partial, WaitingPartial):
            assert partial.offered_at is not None  # an empty partial is never kept
            self._wait(partial.queue, partial.channel, partial.key, (partial.offered_at,), sign)
            return
        name = f"\x00p{partial.source}"  # its ``timing`` (kept by earlier workers) is read from AgentPartials
        by_channel: dict[str, list[int]] = {}
        for channel, offered_at in partial.waiting:
            by_channel.setdefault(channel, []).append(offered_at)
        for channel, since in by_channel.items():
            self._wait(partial.queue, channel, name, tuple(since), sign)
        if partial.agents:
            self._staff(partial.queue, name, partial.agents, sign)

    def _agent_side(self, partial: AgentSide, sign: int) -> None:
        if isinstance(partial, AgentPartial):
            _keep(self.agent_states, partial.agent_id, partial.source, partial if sign > 0 else None)
            if partial.state in SLOT:  # a timed state: open in each of its queues since then
                for queue in partial.queues:
                    _open(self.timing, queue, partial.state, partial.since, sign)
        elif isinstance(partial, AgentWorkPartial):
            _keep(self.agent_work, partial.agent_id, partial.source, partial if sign > 0 else None)
        elif isinstance(partial, AgentRecentPartial):
            sums = self._recent_sums.get(partial.queue)
            if sums is not None:
                sums.add(partial.intervals, sign)
            _keep(self.recent, partial.queue, (partial.source, partial.agent_id),
                  partial.intervals if sign > 0 else None)  # type: ignore[arg-type]  # fmt: skip
        else:
            days = self.agent_days.setdefault(partial.queue, {})
            total = days.setdefault(partial.day, [0] * len(partial.seconds))
            for slot, us in enumerate(partial.seconds):
                total[slot] += sign * us
            if not any(total):
                del days[partial.day]
                if not days:
                    del self.agent_days[partial.queue]

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
            self._count(report.queue, channel, minute, values, sign)
        for channel, offered_at in report.waiting:
            self._wait(report.queue, channel, report.source, (offered_at,), sign)
        if report.agent_state is not None:
            self._staff(report.queue, report.source, ((report.agent_state, 1),), sign)

    def _count(self, queue: str, channel: str, minute: int, values: tuple[int, ...], sign: int) -> None:
        line = self.lines.get((queue, channel))
        if line is None:
            line = self.lines[(queue, channel)] = QueueChannel()
        counts = line.minutes.get(minute)
        if counts is None:
            counts = line.minutes[minute] = Counts()
        counts.add(Counts.from_tuple(values), sign)
        line.hours.pop(minute // 60, None)  # its sum, if taken, is no longer the hour's
        if counts.is_zero():
            del line.minutes[minute]
            self._drop_if_unused(queue, channel, line)

    def _wait(self, queue: str, channel: str, name: str, since: tuple[int, ...], sign: int) -> None:
        line = self.lines.setdefault((queue, channel), QueueChannel())
        if sign > 0:
            line.waiting[name] = since
        else:
            line.waiting.pop(name, None)
            self._drop_if_unused(queue, channel, line)

    def _drop_if_unused(self, queue: str, channel: str, line: QueueChannel) -> None:
        if not line.minutes and not line.waiting:
            del self.lines[(queue, channel)]  # nothing contributes to it any more

    def _staff(self, queue: str, name: str, tally: tuple[tuple[str, int], ...], sign: int) -> None:
        states = self.agents.setdefault(queue, {})
        if sign > 0:
            states[name] = tally
        else:
            states.pop(name, None)
            if not states:
                del self.agents[queue]

    def recent_time(self, queue: str, hour: int, quarter: int, now_us: int) -> tuple[list[int], list[int]]:
        """The µs per timed state of ``queue``'s recent closed intervals in [hour, now] and
        [quarter, now]. Kept from read to read as partials come and go, summed again when a window
        start moves (once a minute); an interval that ends after ``now`` (a clock behind) is cut
        at ``now``: then every interval is read."""
        sums = self._recent_sums.get(queue)
        if sums is None or (sums.hour, sums.quarter) != (hour, quarter):
            sums = self._summed_recent(queue, hour, quarter)
            if queue in self.recent:  # kept only while the queue holds intervals
                self._recent_sums[queue] = sums
        if sums.latest_end > now_us:
            sums = self._summed_recent(queue, hour, quarter, until=now_us)
        return list(sums.in_hour), list(sums.in_quarter)

    def _summed_recent(self, queue: str, hour: int, quarter: int, until: int = 2**62) -> RecentSums:
        sums = RecentSums(hour, quarter)
        for intervals in self.recent.get(queue, {}).values():
            sums.add(intervals, +1, until)
        return sums

    def expired_partials(self, now_us: int) -> list[str]:
        """The keys of minute partials that can no longer reach any window (to delete)."""
        horizon = minute_of(now_us - REPORT_RETENTION_US)
        return [key for key, partial in self.partials.items()
                if (isinstance(partial, MinutePartial) and partial.minute < horizon)
                or (isinstance(partial, AgentDayPartial) and partial.day < now_us - 2 * DAY_US)]  # fmt: skip

    def minute(self, queue: str, channel: str, minute: int) -> Counts | None:
        """The sum of the current reports for one minute (None: nothing contributes to it)."""
        line = self.lines.get((queue, channel))
        return line.minutes.get(minute) if line is not None else None

    # --------------------------------------------------------------------------------------
    def window_counts(self, now_us: int, day_of: Callable[[str], Day]) -> Iterator[tuple[str, str, str, Counts]]:
        """(queue, channel, window, counts) for every queue and channel the board has seen; ``today``
        from the start of the queue's own day (``day_of``)."""
        by_day: dict[Day, dict[str, tuple[int, int]]] = {}
        for (queue, channel), line in sorted(self.lines.items()):
            day = day_of(queue)
            ranges = by_day.get(day) or by_day.setdefault(day, window_minutes(now_us, day))
            for window in WINDOWS:
                yield queue, channel, window, line.window(*ranges[window])

    def waiting(self, now_us: int) -> Iterator[tuple[str, str, int, int | None]]:
        """(queue, channel, waiting, oldest wait in µs or None) per queue and channel."""
        for (queue, channel), line in sorted(self.lines.items()):
            since = [at for each in line.waiting.values() for at in each if now_us - at <= WAITING_HORIZON_US]
            yield queue, channel, len(since), (now_us - min(since)) if since else None

    def waiting_since(self, now_us: int) -> Iterator[tuple[str, str, list[int]]]:
        """(queue, channel, offered_at of each contact waiting now), per queue and channel."""
        for (queue, channel), line in sorted(self.lines.items()):
            yield (
                queue,
                channel,
                [at for each in line.waiting.values() for at in each if now_us - at <= WAITING_HORIZON_US],
            )

    def agents_by_state(self) -> Iterator[tuple[str, str, int]]:
        """(queue, state, agents) for every state but offline."""
        for queue, states in sorted(self.agents.items()):
            tally: dict[str, int] = {}
            for each in states.values():
                for state, agents in each:
                    if state != "offline":
                        tally[state] = tally.get(state, 0) + agents
            for state, agents in sorted(tally.items()):
                yield queue, state, agents


def _keep(table: dict[str, dict[Any, Any]], name: str, source: Any, value: Any) -> None:
    """``table[name][source] = value``, or its removal (None), dropping an empty ``table[name]``."""
    if value is not None:
        table.setdefault(name, {})[source] = value
        return
    found = table.get(name)
    if found is not None:
        found.pop(source, None)
        if not found:
            del table[name]


def _open(table: dict[str, dict[str, list[int]]], queue: str, state: str, since: int, sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) an agent's open interval in ``queue``: its since, in order."""
    if sign > 0:
        insort(table.setdefault(queue, {}).setdefault(state, []), since)
        return
    states = table.get(queue, {})
    found = states.get(state, [])
    position = bisect_left(found, since)
    if position < len(found) and found[position] == since:
        del found[position]
        if not found:
            del states[state]
            if not states:
                del table[queue]


def whole_from_minute(now_us: int) -> int:
    """The first minute whose sum the board holds whole at ``now`` (see WHOLE_MARGIN_MINUTES):
    earlier minutes may have lost expired reports, so their sums are taken from ClickHouse."""
    return minute_of(now_us - REPORT_RETENTION_US) + WHOLE_MARGIN_MINUTES


def minutes_payload(channel: str, minutes: dict[int, Counts]) -> tuple[tuple[str, int, tuple[int, ...]], ...]:
    return tuple((channel, minute, counts.as_tuple()) for minute, counts in sorted(minutes.items()))


__all__ = [
    "Board",
    "Fence",
    "LivePartial",
    "MinutePartial",
    "Partial",
    "Report",
    "minutes_payload",
    "partial_kind",
    "partial_minute",
    "whole_from_minute",
]
