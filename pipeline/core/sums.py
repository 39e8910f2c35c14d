"""What one input partition's contacts and agents (or one issue-updates partition's issue keys) add
up to: the board's partials, kept by the pass.

Pure: no I/O. The contacts pass of an input partition (``pipeline/core/contact_pass.py``) keeps a
:class:`PartitionSums` beside its contacts and agents. A batch changes a sum by each contact's
contribution after the batch minus its contribution before it, and sends the sums it touched
as partials (``pipeline.core.board.MinutePartial`` and ``LivePartial``) with the partition's
next input offset as their version. The board keeps, per key, the partial of greatest version.

The sums are derived, never stored: on a take-over they are summed again from the contacts and
agents restored from the changelog (:meth:`PartitionSums.of`). That is what keeps them exact
after a crash: the changelog keeps any prefix of a batch's records, so sums stored beside the
contacts could disagree with them; sums derived from the contacts cannot.

**Minutes that close.** Expiry forgets a contact once its last event is older than the contact
retention before the partition's latest event time, so the sums would lose its part in the
minutes it contributed to. Those minutes are *closed* first: the sums hold only minutes from
``closed_before`` on (:func:`first_open_minute`), and a contribution that changes a closed
minute (an event more than the retention late) sends no partial; the pass asks the ClickHouse
sink to re-sum that minute from ``contributions`` instead (:attr:`Touched.closed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.agent_time import SLOT, TIMED, Interval, Stint, day_pieces, day_span, intervals
from pipeline.core.board import (
    AgentDayPartial,
    AgentPartial,
    AgentRecentPartial,
    AgentSide,
    AgentWorkPartial,
    LivePartial,
    MinutePartial,
    QueuePartial,
    WaitingPartial,
)
from pipeline.core.counts import Counts
from pipeline.core.lifecycle import Contribution
from pipeline.core.windows import MINUTE_US, UTC_DAY, Day, minute_of

Minute = tuple[str, str, int]  # (queue, channel, minute)
Lines = dict[tuple[str, str], dict[int, Counts]]  # an issue key's counts per (queue, channel) and minute
NO_CONTRIBUTION = Contribution()


def first_open_minute(latest_us: int, retention_us: int) -> int:
    """The first minute no forgotten contact can have contributed to: expiry at ``latest_us``
    forgets contacts whose every event is before ``latest_us - retention_us``."""
    return minute_of(latest_us - retention_us) + 1


@dataclass
class Touched:
    """What a batch touched: the sums to send as partials, and the closed minutes to re-sum."""

    minutes: set[Minute] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)  # live state: agents by state
    waiting: set[tuple[str, str]] = field(default_factory=set)  # (queue, contact key): its WaitingPartial
    closed: set[Minute] = field(default_factory=set)
    agent_days: set[tuple[str, int]] = field(default_factory=set)  # (queue, day start) of agent time
    recent: set[tuple[str, str]] = field(default_factory=set)  # (queue, agent key): its recent intervals
    agents: set[str] = field(default_factory=set)  # agent keys: their AgentPartial
    work: set[str] = field(default_factory=set)  # agent ids: their AgentWorkPartial


@dataclass
class AgentWork:
    """What a partition's contacts say of one agent (see ``board.AgentWorkPartial``)."""

    contacts: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)  # contact key -> on it
    days: dict[int, list[int]] = field(default_factory=dict)  # day start -> [handled, handle µs]


@dataclass
class PartitionSums:
    source: int  # the input partition
    closed_before: int = -(2**62)  # the first minute held (earlier ones are closed)
    minutes: dict[Minute, Counts] = field(default_factory=dict)
    waiting: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)  # queue -> contact -> (channel, at)
    staff: dict[str, dict[str, int]] = field(default_factory=dict)  # queue -> state (not offline) -> agents
    day: Day = UTC_DAY  # the worker's day: agents' "today"
    queue_days: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (queue, day start) -> µs
    # per queue and agent, its closed intervals that end at or after recent_from: (start, end, slot)
    recent: dict[str, dict[str, list[tuple[int, int, int]]]] = field(default_factory=dict)
    recent_from: int = -(2**62)
    day_of: Callable[[str], Day] = field(default_factory=lambda: _utc_day)  # a queue's own day
    _spans: dict[Day, tuple[int, int]] = field(default_factory=dict)  # per Day, the last day seen
    agent_days: dict[str, dict[int, list[int]]] = field(default_factory=dict)  # agent key -> day -> µs
    latest: dict[str, Stint] = field(default_factory=dict)  # agent key -> its last stint
    work: dict[str, AgentWork] = field(default_factory=dict)  # agent id -> its contacts here
    # agent key -> at most the earliest end of its recent intervals: none to prune while recent_from is not past it
    _earliest: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, source: int, closed_before: int, contacts: Iterable[tuple[str, Contribution]],
           agents: Iterable[tuple[str, list[Stint]]], day: Day | None = None,
           day_of: Callable[[str], Day] | None = None, recent_from: int = -(2**62)) -> PartitionSums:  # fmt: skip
        """The sums of ``contacts`` (key, contribution) and ``agents`` (key, history)."""
        sums = cls(source, closed_before, day=day or UTC_DAY, day_of=day_of or _utc_day, recent_from=recent_from)
        ignored = Touched()
        for key, found in contacts:
            sums.contact(key, NO_CONTRIBUTION, found, ignored)
        for key, history in agents:
            sums.agent_history(key, [], history, set(), set(intervals(history)), ignored)
        return sums

    # ------------------------------------------------------------------ changes
    def contact(self, key: str, before: Contribution, after: Contribution, touched: Touched,
                replayed: bool = False) -> None:  # fmt: skip
        """Replace a contact's contribution ``before`` by ``after``; every open minute of either is
        touched (a replay re-sends what a crash may have lost), its queues' live state when its
        waiting changed (or ``replayed``), and every closed minute whose part changed (all of them
        when ``replayed``: a crash may have lost the re-sum)."""
        self._add(before, -1, touched)
        self._add(after, +1, touched)
        if replayed or _waits(before) != _waits(after):
            touched.waiting.update((found.queue, key) for found in (before, after) if found.queue is not None)
        self._unwait(before, key)
        if after.queue is not None and after.channel is not None and after.waiting_since is not None:
            self.waiting.setdefault(after.queue, {})[key] = (after.channel, after.waiting_since)
        self._closed(before, after, touched, replayed)
        if before.agent is not None or after.agent is not None:
            self._work(key, before, -1, touched)
            self._work(key, after, +1, touched)

    def lines(self, before: Lines, after: Lines, touched: Touched, replayed: bool = False) -> None:
        """Replace an issue key's contribution (its minutes per queue and channel of its issues)
        ``before`` by ``after``: the same rules as :meth:`contact`, without live state."""
        for line in before.keys() | after.keys():
            was = Contribution(*line, before.get(line, {}))
            now = Contribution(*line, after.get(line, {}))
            self._add(was, -1, touched)
            self._add(now, +1, touched)
            self._closed(was, now, touched, replayed)

    def _closed(self, before: Contribution, after: Contribution, touched: Touched, replayed: bool) -> None:
        """Every closed minute whose part changed (all of them when ``replayed``)."""
        same_line = (before.queue, before.channel) == (after.queue, after.channel)
        for found, other in ((before, after), (after, before)):
            if found.queue is None or found.channel is None:
                continue
            for minute, counts in found.minutes.items():
                if minute < self.closed_before and (replayed or not same_line or other.minutes.get(minute) != counts):
                    touched.closed.add((found.queue, found.channel, minute))

    def agent(self, key: str, before: tuple[str, tuple[str, ...]], after: tuple[str, tuple[str, ...]],
              touched: Touched) -> None:  # fmt: skip
        """Replace an agent's (state, queues) ``before`` by ``after``: the agents per queue and state
        (its queues' live partials are sent when that changed; its open interval goes in its
        AgentPartial)."""
        if before == after:
            return
        self._staff(before, -1)
        self._staff(after, +1)
        touched.queues.update(before[1], after[1])

    # ------------------------------------------------------------------ time in state (issue 22)
    def agent_history(self, key: str, before: list[Stint], after: list[Stint], removed: set[Interval],
                      added: set[Interval], touched: Touched) -> None:  # fmt: skip
        """An agent's history ``before`` a batch became ``after``: its closed intervals ``removed`` and
        ``added`` (``agent_time.changes``), its state (:meth:`agent`) and its open interval."""
        was, now = (before[-1] if before else None), (after[-1] if after else None)
        self.agent(key, _held(was), _held(now), touched)
        for interval in removed:
            self._interval(key, interval, -1, touched)
        for interval in added:
            self._interval(key, interval, +1, touched)
        if now is not None:
            self.latest[key] = now
        self._prune_recent(key, touched)
        touched.agents.add(key)

    def _prune_recent(self, key: str, touched: Touched) -> None:
        """The agent's intervals that ended before ``recent_from``: no 15m or 1h window reaches them."""
        earliest = self._earliest.get(key)
        if earliest is None or earliest >= self.recent_from:
            return  # none ended before recent_from
        ends = []
        for queue in [queue for queue, agents in self.recent.items() if key in agents]:
            kept = [each for each in self.recent[queue][key] if each[1] >= self.recent_from]
            if len(kept) < len(self.recent[queue][key]):
                touched.recent.add((queue, key))
            if kept:
                self.recent[queue][key] = kept
                ends.append(min(each[1] for each in kept))
            else:
                del self.recent[queue][key]
                if not self.recent[queue]:
                    del self.recent[queue]
        if ends:
            self._earliest[key] = min(ends)
        else:
            del self._earliest[key]

    def prune_recent(self, touched: Touched) -> None:
        """Every agent's intervals that no 15m or 1h window reaches any more (an expiry run: an
        agent no event touches keeps them until then)."""
        for key in {key for agents in self.recent.values() for key in agents}:
            self._prune_recent(key, touched)

    def forget_agent(self, key: str, touched: Touched) -> None:
        """An agent offline past the retention: nothing of it is held any more."""
        self.latest.pop(key, None)  # offline (only such agents are forgotten): in no tally
        self.agent_days.pop(key, None)
        recent_from, self.recent_from = self.recent_from, 2**62
        self._prune_recent(key, touched)
        self.recent_from = recent_from
        touched.agents.add(key)

    def _interval(self, key: str, interval: Interval, sign: int, touched: Touched) -> None:
        """Add (or take away) one closed interval: its µs in each of its queues' days and in the
        agent's days still held, and, when it ended recently, the interval itself (live partials)."""
        start, end, state, queues = interval
        slot, first = SLOT[state], max(start, self.closed_before * MINUTE_US)
        pieces: dict[Day, list[tuple[int, int]]] = {}  # the interval cut in each Day once: queues share them
        for queue in queues:
            for day, us in self._pieces(pieces, first, end, self.day_of(queue)):
                touched.agent_days.add((queue, day))
                _add_slot(self.queue_days, (queue, day), slot, sign * us)
            if end >= self.recent_from:
                self._recent(queue, key, (start, end, slot), sign)
                touched.recent.add((queue, key))
        days = self.agent_days.setdefault(key, {})
        for day, us in self._pieces(pieces, first, end, self.day):
            _add_slot(days, day, slot, sign * us)
        if not days:
            del self.agent_days[key]

    def _pieces(self, found: dict[Day, list[tuple[int, int]]], start: int, end: int, day: Day) -> list[tuple[int, int]]:
        """``day_pieces`` of [start, end) in ``day``'s days that are not closed, cut once per Day."""
        pieces = found.get(day)
        if pieces is None:
            closed_us = self.closed_before * MINUTE_US
            pieces = [piece for piece in day_pieces(start, end, day, self._day_span) if piece[0] >= closed_us]
            found[day] = pieces
        return pieces

    def _recent(self, queue: str, key: str, interval: tuple[int, int, int], sign: int) -> None:
        agents = self.recent.setdefault(queue, {})
        if sign > 0:
            agents.setdefault(key, []).append(interval)
            self._earliest[key] = min(interval[1], self._earliest.get(key, interval[1]))
            return
        found = agents.get(key, [])
        if interval in found:
            found.remove(interval)
        if not found:
            agents.pop(key, None)
            if not agents:
                del self.recent[queue]

    def _day_span(self, day: Day, at: int) -> tuple[int, int]:
        """``agent_time.day_span``, the last day seen cached per zone: a zone's rules are read once
        a day, not per interval."""
        found = self._spans.get(day)
        if found is None or not found[0] <= at < found[1]:
            found = self._spans[day] = day_span(day, at)
        return found

    def _work(self, key: str, found: Contribution, sign: int, touched: Touched) -> None:
        """A contact's part in its agent's work: on it now, or handled in a day."""
        if found.agent is None:
            return
        agent_id, answered_at, ended_at, handle_us = found.agent
        work = self.work.setdefault(agent_id, AgentWork())
        if ended_at is None and sign > 0:
            work.contacts[key] = (key.split("\x1f", 1)[1], found.queue or "", found.channel or "", answered_at)
        elif ended_at is None:
            work.contacts.pop(key, None)
        elif ended_at >= self.closed_before * MINUTE_US:
            day = self._day_span(self.day, ended_at)[0]
            if day >= self.closed_before * MINUTE_US:
                _add_slot(work.days, day, 0, sign, 2)
                _add_slot(work.days, day, 1, sign * handle_us, 2)
        if not work.contacts and not work.days:
            del self.work[agent_id]
        touched.work.add(agent_id)

    def _staff(self, found: tuple[str, tuple[str, ...]], sign: int) -> None:
        state, queues = found
        if state == "offline":
            return
        for queue in dict.fromkeys(queues):  # a queue listed twice counts the agent once
            states = self.staff.setdefault(queue, {})
            states[state] = states.get(state, 0) + sign
            if not states[state]:
                del states[state]
                if not states:
                    del self.staff[queue]

    def forget_contact(self, key: str, touched: Touched) -> None:
        """An expired contact: it can only still be waiting (offered over 7 days ago)."""
        for queue, waiting in list(self.waiting.items()):
            if waiting.pop(key, None) is not None:
                touched.waiting.add((queue, key))
                if not waiting:
                    del self.waiting[queue]

    def close(self, before_minute: int) -> None:
        """Close the minutes before ``before_minute`` (never reopens one)."""
        if before_minute <= self.closed_before:
            return
        self.closed_before = before_minute
        for minute in [minute for minute in self.minutes if minute[2] < before_minute]:
            del self.minutes[minute]
        first_day = before_minute * MINUTE_US
        for queue_day in [each for each in self.queue_days if each[1] < first_day]:
            del self.queue_days[queue_day]
        for days in [*self.agent_days.values(), *(work.days for work in self.work.values())]:
            for day in [day for day in days if day < first_day]:
                del days[day]
        for key in [key for key, days in self.agent_days.items() if not days]:
            del self.agent_days[key]
        for agent_id in [agent_id for agent_id, work in self.work.items() if not work.contacts and not work.days]:
            del self.work[agent_id]

    def _add(self, found: Contribution, sign: int, touched: Touched) -> None:
        queue, channel = found.queue, found.channel
        if queue is None or channel is None:
            return
        for minute, counts in found.minutes.items():
            if minute < self.closed_before:
                continue  # closed: re-summed in ClickHouse when its part changed (contact)
            key = (queue, channel, minute)
            touched.minutes.add(key)
            total = self.minutes.get(key)
            if total is None:
                total = self.minutes[key] = Counts()
            total.add(counts, sign)
            if total.is_zero():
                del self.minutes[key]

    def _unwait(self, found: Contribution, key: str) -> None:
        if found.queue is None:
            return
        waiting = self.waiting.get(found.queue)
        if waiting is not None:
            waiting.pop(key, None)
            if not waiting:
                del self.waiting[found.queue]

    # ------------------------------------------------------------------ partials
    def partials(self, touched: Touched, epoch: int, version: int) -> tuple[list[MinutePartial], list[QueuePartial]]:
        """The partials of what ``touched`` names, as the sums stand, with ``epoch`` and ``version``."""
        minutes = []
        for key in sorted(touched.minutes):
            if key[2] < self.closed_before:
                continue  # closed after it was touched (an expiry run in the same batch)
            counts = self.minutes.get(key)
            values = counts.as_tuple() if counts is not None else ()
            minutes.append(MinutePartial(self.source, *key, values, epoch, version))
        live: list[QueuePartial] = [self.live(queue, epoch, version) for queue in sorted(touched.queues)]
        live += [self.waits(queue, key, epoch, version) for queue, key in sorted(touched.waiting)]
        return minutes, live

    def everything(self, epoch: int) -> tuple[list[MinutePartial], list[QueuePartial]]:
        """Every sum held, as partials of version 0 (a take-over sends them all once). Every queue's
        LivePartial goes, without waiting contacts: it replaces a list a worker before 2026-12-06
        sent (one the fence has not dropped already)."""
        queues = set(self.waiting) | set(self.staff) | {queue for queue, _, _ in self.minutes}
        waiting = {(queue, key) for queue, contacts in self.waiting.items() for key in contacts}
        return self.partials(Touched(set(self.minutes), queues, waiting), epoch, 0)

    def live(self, queue: str, epoch: int, version: int) -> LivePartial:
        """A queue's agents by state (its waiting contacts go one by one: :meth:`waits`)."""
        agents = tuple(sorted(self.staff.get(queue, {}).items()))
        return LivePartial(self.source, queue, (), agents, epoch, version)

    def waits(self, queue: str, key: str, epoch: int, version: int) -> WaitingPartial:
        """Whether and since when a contact waits in ``queue`` (empty: it does not)."""
        found = self.waiting.get(queue, {}).get(key)
        if found is None:
            return WaitingPartial(self.source, queue, key, epoch=epoch, version=version)
        channel, offered_at = found
        return WaitingPartial(self.source, queue, key, channel, offered_at, epoch, version)

    def agent_partials(self, touched: Touched, epoch: int, version: int) -> list[AgentSide]:
        """The agent-side partials of what ``touched`` names, as the sums stand."""
        found: list[AgentSide] = []
        for queue, day in sorted(touched.agent_days):
            if day >= self.closed_before * MINUTE_US:
                seconds = self.queue_days.get((queue, day))
                found.append(AgentDayPartial(self.source, queue, day, tuple(seconds or ()), epoch, version))
        for queue, key in sorted(touched.recent):
            intervals = tuple(sorted(self.recent.get(queue, {}).get(key, ())))
            found.append(AgentRecentPartial(self.source, queue, key.split("\x1f", 1)[1], intervals, epoch, version))
        for key in sorted(touched.agents):
            stint, agent_id = self.latest.get(key), key.split("\x1f", 1)[1]
            days = tuple((day, tuple(us)) for day, us in sorted(self.agent_days.get(key, {}).items()))
            if stint is None:
                found.append(AgentPartial(self.source, agent_id, epoch=epoch, version=version))
            else:
                found.append(AgentPartial(self.source, agent_id, stint.state, stint.at, stint.queues, stint.reason,
                                          days, epoch, version))  # fmt: skip
        for agent_id in sorted(touched.work):
            work = self.work.get(agent_id, AgentWork())
            contacts = tuple(sorted(work.contacts.values()))
            handled = tuple((day, n, us) for day, (n, us) in sorted(work.days.items()))
            found.append(AgentWorkPartial(self.source, agent_id, contacts, handled, epoch, version))
        return found

    def everything_of_agents(self, epoch: int) -> list[AgentSide]:
        """Every agent-side sum held, as partials of version 0 (a take-over)."""
        recent = {(queue, key) for queue, agents in self.recent.items() for key in agents}
        touched = Touched(agent_days=set(self.queue_days), recent=recent, agents=set(self.latest), work=set(self.work))
        return self.agent_partials(touched, epoch, 0)


def _utc_day(queue: str) -> Day:
    return UTC_DAY


def _held(stint: Stint | None) -> tuple[str, tuple[str, ...]]:
    return (stint.state, stint.queues) if stint is not None else ("offline", ())


def _add_slot(table: dict[Any, list[int]], key: Any, slot: int, amount: int, width: int = len(TIMED)) -> None:
    """``table[key][slot] += amount``; a key all of whose slots are 0 goes."""
    values = table.get(key)
    if values is None:
        values = table[key] = [0] * width
    values[slot] += amount
    if not any(values):
        del table[key]


def _waits(found: Contribution) -> tuple[str | None, str | None, int | None]:
    """Where and since when a contribution's contact waits (all None: it does not)."""
    if found.waiting_since is None:
        return None, None, None
    return found.queue, found.channel, found.waiting_since
