"""The contacts and agents of one input partition, in plain dicts: the one-pass worker's state.

Pure: no I/O, the clock passed in. The ingest stage keeps one :class:`ContactPass` per input
partition it owns (``pipeline/ingest.py``) and hands it each batch of that partition's valid
events, in offset order. A batch gives a :class:`PassOutput`: the state records it changed (for
the partition's changelog, the progress record first), the partials of the sums it touched (for
the board: ``pipeline/core/sums.py``), the contacts' issue updates (for the issues stage) and
their rows (``contact_facts``, ``contributions``).

Exactness after a crash: the changelog is applied whole on recovery (the latest record per key,
as log compaction keeps it), so the state may be ahead of the committed input offset; the batches
after that offset are then read again. A replayed event changes nothing in a contact (its source,
``<partition>:<offset>``, is known), and the progress record says which offsets were applied
already, so duplicates and conflicts are counted once. The progress record goes first into the
changelog partition the contacts' records go to: a crash keeps a prefix of a batch's records, so
an offset counted is an offset whose records are on their way, or already there.

Owners and the board: each owner of a partition takes it over with an *epoch* greater than every
earlier owner's (:meth:`ContactPass.take_over`; the progress record keeps it, written and
acknowledged before anything else is sent). The board drops a partition's partials of earlier
epochs when the new owner's fence arrives and refuses them after, so an earlier owner that goes
on for a batch (a zombie) cannot put back what the new owner's replay never touches.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import msgspec
import orjson

from pipeline.core import agent_log
from pipeline.core.agent_time import Stint, changed_from, changes, stint_at
from pipeline.core.board import AgentSide, Fence, MinutePartial, QueuePartial
from pipeline.core.engine import (
    AgentRecord,
    ContactBatch,
    ContactRecord,
    IssueUpdate,
    contact_issue_updates,
    contact_minutes,
    routing_key,
)
from pipeline.core.expiry import ExpiryClock, contact_expired, contact_kept_until
from pipeline.core.facts import Row, contact_contribution_rows, contact_row
from pipeline.core.intake import owner_partition
from pipeline.core.json_bytes import json_bytes
from pipeline.core.lifecycle import Contribution, contribution
from pipeline.core.progress import StageProgress
from pipeline.core.sums import NO_CONTRIBUTION, Minute, PartitionSums, Touched, first_open_minute
from pipeline.core.targets import Targets
from pipeline.core.windows import UTC_DAY, Day
from pipeline.core.wire import Routed

PROGRESS_KEY = b"\x00progress"  # the changelog key of the partition's progress record
AGENT_PREFIX = agent_log.HEAD_PREFIX
# closed agent intervals kept for the 15m and 1h windows: those that ended within 62 minutes of the
# partition's latest event (the 1h window begins 59 minutes before the minute of now, and now is at
# least as late as any partition's latest event)
RECENT_US = 62 * 60 * 1_000_000


def agent_state_rows(agent_id: str, history: list[Stint], spans: list[tuple[int, int]], version: int) -> list[Row]:
    """The agent's ``agent_states`` rows its batch's events may change: every stint from the start of
    a span to its end (an inserted stint ends its predecessor's interval), as the history is now."""
    rows: list[Row] = []
    positions: set[int] = set()
    for start, end in spans:
        positions.update(range(bisect_left(history, start, key=stint_at), bisect_right(history, end, key=stint_at)))
    for index in sorted(positions):
        stint = history[index]
        ended = history[index + 1].at if index + 1 < len(history) else None
        rows.append((agent_id, stint.at, stint.event_id, stint.state, list(stint.queues), stint.reason, ended,
                     None if ended is None else ended - stint.at, version, 0))  # fmt: skip
    return rows


def history_of(agent: AgentRecord) -> list[Stint]:
    """The agent's stints; a record written before the history was kept is its one latest stint."""
    if not agent.history and agent.at > -(2**62):
        agent.history = [Stint(agent.at, agent.event_id, agent.state, agent.queues)]
    return agent.history


def legacy_owner(key: bytes | None, partitions: int) -> tuple[bytes, int] | None:
    """A record of the Faust contacts stage's tables (versions before December 2026; their
    changelogs ``<app>-contacts-changelog`` and ``<app>-agents-changelog`` had JSON string keys
    and the same msgpack values): the key as this pass stores it and the input partition that
    owns it now (Kafka's default partitioner over the contact or agent id). None for a progress
    record or a key of no contact or agent."""
    if not key:
        return None
    name = orjson.loads(key)
    if not isinstance(name, str) or "\x1f" not in name or name.startswith("\x00"):
        return None
    kind, identifier = name.split("\x1f", 1)
    if kind not in ("contact", "agent"):
        return None
    return name.encode(), owner_partition(identifier.encode(), partitions)


@dataclass
class PassOutput:
    writes: dict[bytes, bytes | None] = field(default_factory=dict)  # changelog; None deletes; progress first
    minutes: list[MinutePartial] = field(default_factory=list)  # to the board
    live: list[QueuePartial] = field(default_factory=list)  # to the board
    agents: list[AgentSide] = field(default_factory=list)  # to the board: time in state, the agent list
    issue_updates: list[IssueUpdate] = field(default_factory=list)
    contact_rows: list[Row] = field(default_factory=list)  # contact_facts
    contribution_rows: list[Row] = field(default_factory=list)  # contributions
    agent_rows: list[Row] = field(default_factory=list)  # agent_states
    touched: set[Minute] = field(default_factory=set)  # every minute the contributions rows change
    closed: set[Minute] = field(default_factory=set)  # of those, the closed ones: to re-sum in ClickHouse
    epoch: int = 0  # the owner's: the changelog records carry it (pipeline/changelog.py)


@dataclass
class TakeOver:
    """What a new owner of an input partition sends, in this order, before its first batch."""

    writes: dict[bytes, bytes | None]  # the changelog record that keeps the new epoch
    fence: Fence  # to every board partition
    minutes: list[MinutePartial]
    live: list[QueuePartial]
    agents: list[AgentSide] = field(default_factory=list)


@dataclass
class ContactPass:
    targets: Targets
    retention_us: int
    source: int = 0  # the input partition
    day: Day = UTC_DAY  # the worker's day (CCPULSE_TIMEZONE): agents' "today"
    epoch: int = 0  # when this owner took the partition over (µs, see take_over)
    replay_until: int = 0  # events before this offset remember every state's minutes (take_over)
    contact_records: dict[str, bytes] = field(default_factory=dict)  # contact key -> msgpack record
    agent_records: dict[str, AgentRecord] = field(default_factory=dict)  # agent key -> its record, decoded
    progress: StageProgress = field(default_factory=StageProgress)
    latest_at: int = 0  # the greatest event time applied
    _closed_before: int = -(2**62)  # as restored from the progress record
    _stored_epoch: int = 0  # the epoch of the owner that wrote the progress record
    _sums: PartitionSums | None = None  # derived from the records on first use (sums)
    _kept_until: dict[str, int] = field(default_factory=dict)  # contact key -> event time it expires after
    _expiry: ExpiryClock = field(default_factory=ExpiryClock)
    _before: dict[str, Contribution | list[Stint]] = field(default_factory=dict)  # a key's state before the batch
    # restored agents, assembled on first use (pipeline/core/agent_log.py): heads, hours' records
    _heads: dict[str, bytes] = field(default_factory=dict)
    _hours: dict[str, dict[int, bytes]] = field(default_factory=dict)
    _unchunked: set[str] = field(default_factory=set)  # agents whose head still holds the whole history
    _orphans: set[str] = field(default_factory=set)  # hours' keys of agents forgotten: to delete
    _days: dict[str, Day] = field(default_factory=dict)  # queue -> where its day begins (_day_of)
    _again: dict[bytes, bytes | None] = field(default_factory=dict)  # written again by take_over (write_again)

    # ------------------------------------------------------------------ recovery
    def restore(self, key: bytes, value: bytes | None) -> None:
        """One changelog record, in log order (a later record of a key replaces the earlier)."""
        self._sums = None
        if key == PROGRESS_KEY:
            stored = orjson.loads(value) if value else None
            self.progress = StageProgress.from_json(stored)
            self._closed_before = int((stored or {}).get("closed_before", -(2**62)))
            # the greatest epoch read: a zombie's later record may carry an older one
            self._stored_epoch = max(self._stored_epoch, int((stored or {}).get("epoch", 0)))
            return
        name = key.decode()
        if name.startswith(agent_log.HOURS_PREFIX):
            agent_key, hour = agent_log.parse_hours_key(name)
            hours = self._hours.setdefault(agent_key, {})
            if value is None:
                hours.pop(hour, None)
            else:
                hours[hour] = value
        elif name.startswith(AGENT_PREFIX):
            self.agent_records.pop(name, None)
            if value is None:
                self._heads.pop(name, None)
            else:
                self._heads[name] = value
        elif value is None:
            self.contact_records.pop(name, None)
        else:
            self.contact_records[name] = value
        self._kept_until.pop(name, None)

    def write_again(self, keys: Iterable[bytes]) -> None:
        """Keys whose latest changelog record an earlier owner sent after a later one took over
        (``pipeline.changelog.OwnerEpochs``; not restored): :meth:`take_over` writes their value as
        restored (None: none) again, so that compaction keeps that one. Called once the changelog
        is read, before the agents are assembled (their records are still as read)."""
        for key in keys:
            if key == PROGRESS_KEY:
                continue  # the take-over writes its own
            name = key.decode()
            if name.startswith(agent_log.HOURS_PREFIX):
                agent_key, hour = agent_log.parse_hours_key(name)
                self._again[key] = self._hours.get(agent_key, {}).get(hour)
            elif name.startswith(AGENT_PREFIX):
                self._again[key] = self._heads.get(name)
            else:
                self._again[key] = self.contact_records.get(name)

    def _assemble(self) -> None:
        """The agents restored: each head with its hours' records (``agent_log.assemble``)."""
        for key, head in self._heads.items():
            self.agent_records[key], unchunked = agent_log.assemble(head, self._hours.pop(key, {}).values())
            if unchunked:
                self._unchunked.add(key)
        for key, hours in self._hours.items():  # no head: an agent forgotten, its hours left behind
            self._orphans.update(agent_log.hours_key(key, hour) for hour in hours)
        self._heads, self._hours = {}, {}

    def contacts(self) -> int:
        return len(self.contact_records)

    def agents(self) -> int:
        self._assemble()
        return len(self.agent_records)

    @property
    def sums(self) -> PartitionSums:
        """The partition's partials, summed from its records once after a restore."""
        if self._sums is None:
            self._assemble()
            contacts, agents = [], []
            for key, value in self.contact_records.items():
                state = self._contact(value).state
                self.latest_at = max(self.latest_at, state.last_at)
                contacts.append((key, contribution(state, key.split("\x1f", 1)[1], self.targets)))
            for key, agent in self.agent_records.items():
                self.latest_at = max(self.latest_at, agent.at)
                agents.append((key, history_of(agent)))
            self._sums = PartitionSums.of(self.source, self._closed_before, contacts, agents, self.day, self._day_of,
                                          self.latest_at - RECENT_US)  # fmt: skip
        return self._sums

    def _day_of(self, queue: str) -> Day:
        """Where a queue's day begins (its own zone and start, else the worker's); asked per interval
        and queue, so kept (the targets of a pass do not change)."""
        found = self._days.get(queue)
        if found is None:
            found = self._days[queue] = self.targets.day_for(queue, self.day.zone)
        return found

    def take_over(self, now_us: int, log_end: int = 0) -> TakeOver:
        """This owner's epoch: after every earlier owner's, whose epoch the progress record keeps,
        even if clocks went back. The progress record that keeps it is to be written to the
        changelog and acknowledged before the fence is sent (so a later owner sees it even when
        this one dies before its first batch); the fence drops earlier owners' partials from the
        board; then every partial of the partition, of version 0 (sent once, right after the
        fence: the batches replayed from the committed offset send what changes after).

        ``log_end``: the input partition's end offset now. An earlier owner may have written the
        ``contributions`` rows of events up to it and died before their changelog records (rows go
        first): until then, the minutes of every state a contact passes through are remembered, so
        that its rows delete the ones its last state leaves. No earlier owner when the changelog
        holds nothing, not even a progress record (an owner writes its own, acknowledged, before
        its first batch): then nothing is remembered (a first start on a backlog pays nothing)."""
        first_owner = not (self._stored_epoch or self.contact_records or self.agent_records or self._heads)
        self.replay_until = 0 if first_owner else log_end
        self.epoch = max(now_us, self._stored_epoch + 1)
        self._stored_epoch = self.epoch
        minutes, live = self.sums.everything(self.epoch)
        agents = self.sums.everything_of_agents(self.epoch)
        writes = {PROGRESS_KEY: self._progress_record(), **self._again}
        self._again = {}
        return TakeOver(writes, Fence(self.source, self.epoch), minutes, live, agents)

    def _progress_record(self) -> bytes:
        stored = {**self.progress.to_json(), "closed_before": self.sums.closed_before, "epoch": self.epoch}
        return json_bytes(stored)

    # ------------------------------------------------------------------ a batch
    def on_batch(self, messages: Iterable[tuple[int, Routed]], wall: float) -> PassOutput:
        """``messages``: (offset, routed event) in offset order; ``wall`` a monotonic clock (expiry)."""
        sums = self.sums
        batch = ContactBatch(self.targets, self._load)
        progress = self.progress
        before = batch.duplicates, batch.conflicts
        replayed: set[str] = set()
        spans: dict[str, list[tuple[int, int]]] = {}  # agent key -> the times its events may change
        for offset, routed in messages:
            new = progress.is_new(offset)
            changed = batch.event(routed.source, routed.event, new)
            if changed is not None:  # an agent's: the time it may change, for its agent_states rows
                self._agent_span(routing_key(routed.event), changed, spans, not new or offset < self.replay_until)
            if not new:
                replayed.add(routing_key(routed.event))
            if offset < self.replay_until and routed.event.type != "agent.state_changed":
                self._passed_through(batch, routing_key(routed.event))
            progress.applied(offset)
        progress.duplicates += batch.duplicates - before[0]
        progress.conflicts += batch.conflicts - before[1]
        self.latest_at = max(self.latest_at, batch.latest_at)
        sums.recent_from = self.latest_at - RECENT_US
        out, touched = PassOutput(epoch=self.epoch), Touched()
        out.writes[PROGRESS_KEY] = b""  # first: its value once the batch's closing is known
        out.writes.update(dict.fromkeys((key.encode() for key in self._orphans), None))
        self._orphans.clear()
        self._contacts(batch, sums, touched, replayed, out)
        self._agents(batch, sums, touched, spans, out)
        for key, record in batch.records.items():
            if isinstance(record, ContactRecord):
                value = self.contact_records[key] = msgspec.msgpack.encode(record)
                out.writes[key.encode()] = value
                self._kept_until[key] = contact_kept_until(record.state, self.retention_us)
                out.contact_rows.append(contact_row(key.split("\x1f", 1)[1], record, self.targets))
        self._before.clear()
        if self.latest_at and self._expiry.due(self.latest_at, wall):
            sums.close(first_open_minute(self.latest_at, self.retention_us))
            sums.prune_recent(touched)
            expired = list(self._expired())
            self._expiry.ran(len(expired))
            for key in expired:
                self._kept_until.pop(key, None)
                if key.startswith(AGENT_PREFIX):
                    out.writes.update(agent_log.forgotten(key, self.agent_records.pop(key)))
                    sums.forget_agent(key, touched)
                else:
                    self.contact_records.pop(key, None)
                    sums.forget_contact(key, touched)
                    out.writes[key.encode()] = None
            self._trim_agents(out)
        out.writes[PROGRESS_KEY] = self._progress_record()
        out.minutes, out.live = sums.partials(touched, self.epoch, progress.offsets.next_offset)
        out.agents = sums.agent_partials(touched, self.epoch, progress.offsets.next_offset)
        out.closed = touched.closed
        return out

    def _passed_through(self, batch: ContactBatch, key: str) -> None:
        """Remember the minutes of a contact's state after an event read again after a take-over:
        an earlier owner may have ended a batch, and written its rows, in that state."""
        record = batch.records[key]
        assert isinstance(record, ContactRecord)
        contact_minutes(record, contribution(record.state, batch.contacts[key], self.targets))

    def _contacts(self, batch: ContactBatch, sums: PartitionSums, touched: Touched, replayed: set[str],
                  out: PassOutput) -> None:  # fmt: skip
        for key, contact_id in batch.contacts.items():
            record = batch.records[key]
            assert isinstance(record, ContactRecord)
            found = contribution(record.state, contact_id, self.targets)
            before = self._before.get(key, NO_CONTRIBUTION)
            assert isinstance(before, Contribution)
            sums.contact(key, before, found, touched, key in replayed)
            left = contact_minutes(record, found)
            out.contribution_rows += contact_contribution_rows(contact_id, found, left, record.version)
            out.touched.update((found.queue, found.channel, minute) for minute in found.minutes)  # type: ignore[misc]
            out.touched.update(left)
            out.issue_updates += contact_issue_updates(record, contact_id, found)

    @staticmethod
    def _agent_span(key: str, changed: tuple[int, int, bool], spans: dict[str, list[tuple[int, int]]],
                    replayed: bool) -> None:  # fmt: skip
        """Note the time an agent's event may change in its states. Read again after a take-over
        (``replayed``), it may be known already, its rows lost in a crash: the time it decides is
        written again (an earlier owner's row of a stint with another end is replaced by the batch
        that inserts the stint that ends it now: its version, an offset, is the greater)."""
        start, end, known = changed
        if replayed or not known:
            spans.setdefault(key, []).append((start, end))

    def _agents(self, batch: ContactBatch, sums: PartitionSums, touched: Touched,
                spans: dict[str, list[tuple[int, int]]], out: PassOutput) -> None:  # fmt: skip
        version = self.progress.offsets.next_offset
        for key in batch.agents:
            agent = batch.records[key]
            assert isinstance(agent, AgentRecord)
            before = self._before.get(key, [])
            assert isinstance(before, list)
            after = history_of(agent)
            removed, added = changes(before, after)
            sums.agent_history(key, before, after, removed, added, touched)
            if key in spans:
                out.agent_rows += agent_state_rows(key.split("\x1f", 1)[1], after, spans[key], version)
            self.agent_records[key] = agent
            out.writes.update(agent_log.writes(key, agent, self._changed_hours(key, before, after)))

    def _changed_hours(self, key: str, before: list[Stint], after: list[Stint]) -> set[int]:
        """The hours of the stints a batch inserted; every hour of a head of the earlier kind."""
        if key in self._unchunked:
            self._unchunked.discard(key)
            return agent_log.hours(after)
        start = changed_from(before, after)
        known = {id(stint) for stint in before[start:]}
        return agent_log.hours(stint for stint in after[start:] if id(stint) not in known)

    def _trim_agents(self, out: PassOutput) -> None:
        """Let go of each agent's stints that end before the retention's horizon (the one in force
        at the horizon stays: it says the state then); their minutes are closed already."""
        horizon = self.latest_at - self.retention_us
        for key, agent in self.agent_records.items():
            first = bisect_right(agent.history, horizon, key=stint_at) - 1  # the stint in force at the horizon
            if first > 0:
                cut = agent.history[:first]
                agent.history = agent.history[first:]
                agent.kept_from = agent.history[0].at
                changed = agent_log.hours(agent.history if key in self._unchunked else cut)
                self._unchunked.discard(key)
                out.writes.update(agent_log.writes(key, agent, changed))

    def _load(self, key: str) -> ContactRecord | AgentRecord | None:
        if key.startswith(AGENT_PREFIX):
            agent = self.agent_records.get(key)
            if agent is not None:
                self._before[key] = list(history_of(agent))  # a copy: the batch inserts into the record's
            return agent
        value = self.contact_records.get(key)
        if value is None:
            return None
        contact = self._contact(value)
        self._before[key] = contribution(contact.state, key.split("\x1f", 1)[1], self.targets)
        return contact

    # ------------------------------------------------------------------ forgetting
    def _expired(self) -> Iterator[str]:
        """Contacts past the retention that wait for nothing, and agents offline that long; at
        most ``at_once`` keys a run."""
        latest, retention, at_once = self.latest_at, self.retention_us, self._expiry.at_once
        found = 0
        for key, agent in self.agent_records.items():
            if found >= at_once:
                return
            if agent.state == "offline" and agent.at < latest - retention:
                found += 1
                yield key
        for key, value in self.contact_records.items():
            if found >= at_once:
                return
            until = self._kept_until.get(key)
            state = None
            if until is None:
                state = self._contact(value).state
                until = self._kept_until[key] = contact_kept_until(state, retention)
            if latest > until and contact_expired(state or self._contact(value).state, latest, retention):
                found += 1
                yield key

    @staticmethod
    def _contact(value: bytes) -> ContactRecord:
        return msgspec.msgpack.decode(value, type=ContactRecord)
