"""The stages of the metrics pipeline as pure steps, and an in-memory engine that chains them.

    event ─▶ contact step (per contact_id) ──reports──────────────────▶ board (per queue)
         └─▶ agent step (per agent_id) ────reports──────────────────▶ board
                 contact step ──issue updates──▶ issue step (per issue key) ──reports──▶ board

Each step takes the stored state of its key and returns the new state and what it sends on.
In the worker each stage is a Faust agent on a topic partitioned by its key; here
:class:`Engine` runs the same steps in one process (tests, replays, benchmarks).

Hazards the steps guard against: a step may run again on a message it has already applied
(a replay after a crash); it then changes nothing, but sends its *current* reports again, so
a report lost in the crash is sent after all (the board applies reports idempotently).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec
from msgspec import Struct

from pipeline.core.agent_time import Stint, insert_at, shared
from pipeline.core.board import Board, Report, minutes_payload
from pipeline.core.contract import Event
from pipeline.core.counts import Counts
from pipeline.core.issues import Issue, group
from pipeline.core.issues import contributions as issue_contributions
from pipeline.core.lifecycle import ContactState, Contribution, IssueContact, apply, contribution
from pipeline.core.partitions import partition_of
from pipeline.core.targets import Targets

ISSUE_PARTITIONS = 2  # the engine's issues stage, for batches that cover some of them


class IssueLink(Struct, array_like=True, frozen=True):
    """Which issue a contact is in, as its issue key's grouping says (a ``contact_issues`` row)."""

    contact_id: str
    key: str  # the issue key the link comes from: a link from a key the contact left is ignored
    issue_id: str
    is_repeat: bool


class ContactRecord(Struct, array_like=True):
    state: ContactState = msgspec.field(default_factory=ContactState)
    # every queue and issue key ever reported to: a clear lost in a crash is sent again
    reported_queues: list[str] = []
    reported_issue_keys: list[str] = []
    # every (queue, channel, minute) ever reported: a minute the contact left is cleared in ClickHouse
    reported_minutes: list[tuple[str, str, int]] = []
    version: int = 0  # grows with every step: orders the contact's rows in ClickHouse
    # Written by versions before 2026-12 (the issues stage sent it back); read from old changelogs,
    # never set: a contact's issue is in ClickHouse's ``contact_issues`` now
    issue: IssueLink | None = None


class IssueUpdate(Struct, array_like=True, frozen=True):
    key: str
    contact_id: str
    contact: IssueContact | None  # None: the contact no longer takes part in this key


class IssueGroup(Struct, array_like=True):
    contacts: dict[str, IssueContact] = {}
    reported_queues: list[str] = []
    last_at: int = 0
    reported_minutes: list[tuple[str, str, int]] = []
    version: int = 0
    reported_issues: list[str] = []  # every issue id ever written: one that no longer exists is deleted


@dataclass
class IssueOutcome:
    reports: list[Report]
    issues: list[tuple[str, Issue]]  # the key's issues now, by id (or only the changed ones: issue_changes)
    gone: list[str]  # issue ids written before that no longer exist
    links: list[IssueLink]
    lines: dict[tuple[str, str], dict[int, Counts]] = field(default_factory=dict)  # the key's counts now
    left: list[tuple[str, str, int]] = field(default_factory=list)  # minutes contributed to before, not now


class AgentRecord(Struct, array_like=True):
    at: int = -(2**62)
    event_id: str = ""
    state: str = "offline"
    queues: tuple[str, ...] = ()
    reported_queues: tuple[str, ...] = ()
    # Every state event from the last one at or before the retention's horizon on, in order (time
    # in state: pipeline/core/agent_time.py); the fields above are its last stint's. Stints before
    # ``kept_from`` were let go: an event older than that changes no minute still held.
    history: list[Stint] = []
    kept_from: int = -(2**62)
    chunked: bool = False  # a changelog head without its history (pipeline/core/agent_log.py)


@dataclass
class ContactOutcome:
    reports: list[Report]
    issue_updates: list[IssueUpdate]
    new: bool  # False: a replay of a message already applied
    duplicate: bool  # the message is a duplicate of an earlier one for the same (contact, type)
    conflict: bool  # the message made the contact both answered and abandoned


def contact_step(record: ContactRecord, contact_id: str, event: Event, source: str, targets: Targets) -> ContactOutcome:
    new, duplicate, conflict = contact_apply(record, event, source)
    reports, updates = contact_reports(record, contact_id, targets)
    return ContactOutcome(reports, updates, new, duplicate, conflict)


def contact_apply(record: ContactRecord, event: Event, source: str) -> tuple[bool, bool, bool]:
    """The first half of :func:`contact_step`: apply the message; (new, duplicate, conflict).

    A stage applies every message of a batch this way and calls :func:`contact_reports` once
    per contact at the end: reports replace each other, so only the last one of a batch counts.
    """
    record.version += 1
    state = record.state
    had_conflict = state.conflict
    new = apply(state, event, source)
    seen = state.sources[event.type]
    duplicate = seen.index(source) > 0
    conflict = state.conflict and not had_conflict
    return new, duplicate, conflict


def contact_reports(record: ContactRecord, contact_id: str, targets: Targets) -> tuple[list[Report], list[IssueUpdate]]:
    """The contact's current reports (and clears for a queue or issue key it left)."""
    found = contribution(record.state, contact_id, targets)
    source = f"contact:{contact_id}"
    reports: list[Report] = []
    now_minutes = (
        {(found.queue, found.channel, minute) for minute in found.minutes} if found.queue and found.channel else set()
    )
    left = _left(record.reported_minutes, now_minutes)
    if found.queue is not None and found.channel is not None:
        waiting = ((found.channel, found.waiting_since),) if found.waiting_since is not None else ()
        reports.append(Report(source, found.queue, minutes_payload(found.channel, found.minutes), waiting,
                              version=record.version, left=left.get(found.queue, ())))  # fmt: skip
    # an earlier offer may have named another queue (or customer, reason, case): clear it there
    reports += [Report(source, queue, version=record.version, left=left.get(queue, ()))
                for queue in record.reported_queues if queue != found.queue]  # fmt: skip
    if found.queue is not None and found.queue not in record.reported_queues:
        record.reported_queues.append(found.queue)
    _remember(record.reported_minutes, now_minutes)
    return reports, contact_issue_updates(record, contact_id, found)


def contact_issue_updates(record: ContactRecord, contact_id: str, found: Contribution) -> list[IssueUpdate]:
    """The contact's part in its issue key now, and its leaving of a key it was in before."""
    updates: list[IssueUpdate] = []
    key = found.issue.key if found.issue is not None else None
    if key is not None:
        updates.append(IssueUpdate(key, contact_id, found.issue))
    updates += [IssueUpdate(old, contact_id, None) for old in record.reported_issue_keys if old != key]
    if key is not None and key not in record.reported_issue_keys:
        record.reported_issue_keys.append(key)
    return updates


def contact_minutes(record: ContactRecord, found: Contribution) -> list[Minute]:
    """The (queue, channel, minute)s the contact contributed to before and contributes nothing to
    now (their ``contributions`` rows go), remembering the ones it contributes to now."""
    now = {(found.queue, found.channel, minute) for minute in found.minutes} if found.queue and found.channel else set()
    left = [minute for minute in record.reported_minutes if minute not in now]
    _remember(record.reported_minutes, now)  # type: ignore[arg-type]
    return left


def issue_step(record: IssueGroup, update: IssueUpdate, targets: Targets) -> IssueOutcome:
    issue_apply(record, update)
    return issue_outcome(record, update.key, targets)


def issue_apply(record: IssueGroup, update: IssueUpdate) -> bool:
    """The first half of :func:`issue_step`: apply the update; False when it changes nothing (a
    contact reported again with the same facts, e.g. for its survey). A stage applies every update
    of a batch and calls :func:`issue_outcome` once per key at the end (outcomes replace each other)."""
    if not issue_changed_by(record, update):
        return False
    record.version += 1
    if update.contact is None:
        record.contacts.pop(update.contact_id, None)
    else:
        record.contacts[update.contact_id] = update.contact
        record.last_at = max(record.last_at, update.contact.ended_at or update.contact.offered_at)
    return True


def issue_changed_by(record: IssueGroup, update: IssueUpdate) -> bool:
    if update.contact is None:
        return update.contact_id in record.contacts
    return record.contacts.get(update.contact_id) != update.contact


def issue_outcome(record: IssueGroup, key: str, targets: Targets, reports: bool = True) -> IssueOutcome:
    """The key's issues, counts per line and minute, rows to delete and links, and the minutes it
    contributed to before and no more (remembering the ones it contributes to now), from its
    current state; with ``reports``, its reports too (the Engine's board; the issues pass sends
    sums instead, ``pipeline.core.issue_pass``)."""
    issues = group(record.contacts.values(), targets.fcr_window_us)
    per_line = issue_contributions(issues)
    ids = dict(identified(key, issues))
    gone = [known for known in record.reported_issues if known not in ids]
    record.reported_issues = sorted(set(record.reported_issues) | set(ids))
    links = [
        IssueLink(contact.contact_id, key, identifier, position > 0)
        for identifier, issue in ids.items()
        for position, contact in enumerate(issue.contacts)
    ]
    now_minutes = {(queue, channel, minute) for (queue, channel), minutes in per_line.items() for minute in minutes}
    left = [minute for minute in record.reported_minutes if minute not in now_minutes]
    found = _issue_reports(record, key, per_line, now_minutes) if reports else []
    _remember(record.reported_minutes, now_minutes)
    return IssueOutcome(found, list(ids.items()), gone, links, per_line, left)


def _issue_reports(record: IssueGroup, key: str, per_line: dict[tuple[str, str], dict[int, Counts]],
                   now_minutes: set[Minute]) -> list[Report]:  # fmt: skip
    source = f"issue:{key}"
    by_queue: dict[str, list[tuple[str, int, tuple[int, ...]]]] = {}
    for (queue, channel), minutes in per_line.items():
        by_queue.setdefault(queue, []).extend(minutes_payload(channel, minutes))
    left = _left(record.reported_minutes, now_minutes)
    reports = [Report(source, queue, tuple(sorted(entries)), version=record.version, left=left.get(queue, ()))
               for queue, entries in sorted(by_queue.items())]  # fmt: skip
    reports += [Report(source, queue, version=record.version, left=left.get(queue, ()))
                for queue in record.reported_queues if queue not in by_queue]  # fmt: skip
    record.reported_queues = sorted(set(record.reported_queues) | set(by_queue))
    return reports


def identified(key: str, issues: Iterable[Issue]) -> list[tuple[str, Issue]]:
    """The issues with their ids."""
    return [(issue_id(key, issue), issue) for issue in issues]


def issues_of(record: IssueGroup, key: str, targets: Targets) -> list[tuple[str, Issue]]:
    """The key's issues by id, as its record stands (what its last outcome sent)."""
    return identified(key, group(record.contacts.values(), targets.fcr_window_us))


def issue_changes(
    before: list[tuple[str, Issue]], outcome: IssueOutcome, rejoined: Collection[str] = ()
) -> IssueOutcome:
    """``outcome`` cut down to what changed since ``before`` (the key's issues when the batch
    began, all sent already): the issues whose contacts changed (their rows), and the links of
    contacts whose issue or place in it changed, or that left the key and came back within the
    batch (``rejoined``: a link from the key they passed through may have reached them meanwhile).
    Reports and ``gone`` stay whole. A stage that may have died before sending ``before``'s rows
    and links (a replay) sends the whole outcome instead."""
    known = dict(before)
    linked = {contact.contact_id: (identifier, position > 0)
              for identifier, issue in before for position, contact in enumerate(issue.contacts)}  # fmt: skip
    issues = [(identifier, issue) for identifier, issue in outcome.issues if known.get(identifier) != issue]
    links = [link for link in outcome.links if link.contact_id in rejoined
             or linked.get(link.contact_id) != (link.issue_id, link.is_repeat)]  # fmt: skip
    return IssueOutcome(outcome.reports, issues, outcome.gone, links, outcome.lines, outcome.left)


@dataclass
class IssueBatch:
    """One batch of the issues stage: each key's group loaded once (``load``), the batch's updates
    applied, then each key's outcome once: nothing for a key the batch did not change (what it
    would send, its last outcome sent already), else cut down to what changed
    (:func:`issue_changes`) — unless one of the key's updates was applied before (``replay``: the
    stage may have died before that batch's reports, rows and links were out), which sends the
    whole outcome."""

    targets: Targets
    load: Callable[[str], IssueGroup]
    reports: bool = True  # False: the issues pass, which sends sums instead (issue_outcome)
    groups: dict[str, IssueGroup] = field(default_factory=dict)
    before: dict[str, list[tuple[str, Issue]]] = field(default_factory=dict)  # as last sent
    changed: set[str] = field(default_factory=set)
    replayed: set[str] = field(default_factory=set)
    rejoined: dict[str, set[str]] = field(default_factory=dict)  # contacts that left the key in it

    def apply(self, update: IssueUpdate, replay: bool = False) -> IssueGroup:
        key = update.key
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = self.load(key)
        if replay:
            self.replayed.add(key)
        if update.contact is None:
            self.rejoined.setdefault(key, set()).add(update.contact_id)
        if key not in self.changed:
            if not issue_changed_by(group, update):
                return group
            self.before[key] = issues_of(group, key, self.targets)  # before its first change
            self.changed.add(key)
        issue_apply(group, update)
        if replay:
            # The batch that first applied this update may have sent an outcome whose record was
            # lost (a crash between the two): what it reported, the board still holds. Every state
            # the replay passes through is one such a batch could have ended in, so its queues,
            # minutes and issue ids join the reported ones: the outcome sent now clears them.
            issue_outcome(group, key, self.targets, self.reports)
        return group

    def outcome(self, key: str) -> IssueOutcome:
        if key not in self.changed and key not in self.replayed:
            return IssueOutcome([], [], [], [])
        outcome = issue_outcome(self.groups[key], key, self.targets, self.reports)
        if key in self.replayed:
            return outcome
        return issue_changes(self.before[key], outcome, self.rejoined.get(key, ()))


Record = TypeVar("Record", ContactRecord, AgentRecord)


def contact_key(contact_id: str | None) -> str:
    return f"contact\x1f{contact_id}"


def routing_key(event: Event) -> str:
    """Contacts by contact_id; agents by agent_id, in a separate key space."""
    if event.type == "agent.state_changed":
        return f"agent\x1f{event.agent_id}"
    return contact_key(event.contact_id)


@dataclass
class ContactBatch:
    """One batch of the contacts stage, as the worker and the :class:`Engine` both run it: every
    event applied first (``event``), each record loaded once (``load``; None: new), then
    each contact's and agent's reports once, from its state after the whole batch (``outcome``:
    a key's reports replace each other, only the last would count). Duplicates and conflicts are
    counted for new messages only (``new``: not a replay of one applied before)."""

    targets: Targets
    load: Callable[[str], ContactRecord | AgentRecord | None]
    records: dict[str, ContactRecord | AgentRecord] = field(default_factory=dict)  # every key touched
    contacts: dict[str, str] = field(default_factory=dict)  # contact key -> id, with new messages
    agents: dict[str, str] = field(default_factory=dict)  # agent key -> id
    duplicates: int = 0
    conflicts: int = 0
    latest_at: int = 0  # the greatest event time of the batch

    def event(self, routed_source: str, event: Event, new: bool) -> tuple[int, int, bool] | None:
        """Apply one message; for an agent's, what ``agent_apply`` returns (the time it may change)."""
        self.latest_at = max(self.latest_at, event.at)
        key = routing_key(event)
        if event.type == "agent.state_changed":
            agent = self._record(key, AgentRecord)
            self.agents[key] = event.agent_id or ""
            return agent_apply(agent, event)
        contact = self._record(key, ContactRecord)
        applied, duplicate, conflict = contact_apply(contact, event, routed_source)
        if new and applied:  # a re-forwarded copy has a new offset but a known source
            self.duplicates += duplicate
            self.conflicts += conflict
        self.contacts[key] = event.contact_id or ""
        return None

    def outcome(self) -> Iterator[tuple[str, list[Report], list[IssueUpdate]]]:
        """Per key touched by new messages: its reports now, and a contact's issue updates (one
        key at a time: a stage gives the event loop a turn between them)."""
        for key, contact_id in self.contacts.items():
            contact = self.records[key]
            assert isinstance(contact, ContactRecord)
            yield key, *contact_reports(contact, contact_id, self.targets)
        for key, agent_id in self.agents.items():
            agent = self.records[key]
            assert isinstance(agent, AgentRecord)
            yield key, agent_reports(agent, agent_id), []

    def agent(self, key: str) -> AgentRecord:
        """An agent's record as the batch holds it (loaded on first use)."""
        return self._record(key, AgentRecord)

    def _record(self, key: str, kind: type[Record]) -> Record:
        record = self.records.get(key)
        if record is None:
            record = self.load(key) or kind()
            self.records[key] = record
        assert isinstance(record, kind)
        return record


def issue_id(key: str, issue: Issue) -> str:
    """A stable id: the issue key and its opening contact (32 hex digits)."""
    return hashlib.blake2b(f"{key}\x1f{issue.opening.contact_id}".encode(), digest_size=16).hexdigest()


Minute = tuple[str, str, int]  # (queue, channel, minute)


def _left(reported: list[Minute], now: set[Minute]) -> dict[str, tuple[tuple[str, int], ...]]:
    """Per queue, the (channel, minute)s reported before and not contributed to now."""
    gone: dict[str, list[tuple[str, int]]] = {}
    for queue, channel, minute in reported:
        if (queue, channel, minute) not in now:
            gone.setdefault(queue, []).append((channel, minute))
    return {queue: tuple(sorted(minutes)) for queue, minutes in gone.items()}


def _remember(reported: list[tuple[str, str, int]], now: set[tuple[str, str, int]]) -> None:
    known = set(reported)
    reported.extend(sorted(now - known))


def agent_step(record: AgentRecord, event: Event) -> list[Report]:
    """The agent's latest state (by event time; ties: the larger event_id) in each queue it serves.

    Idempotent as it stands: applying an event again, or an older one, changes nothing.
    """
    agent_apply(record, event)
    return agent_reports(record, event.agent_id or "")


def agent_apply(record: AgentRecord, event: Event) -> tuple[int, int, bool] | None:
    """The first half of :func:`agent_step`: the event in the agent's history, and its latest state.
    A stage applies every event of a batch and calls :func:`agent_reports` once per agent at the end.
    Returns the time the event may change and whether it was known (``agent_time.insert_at``); None
    for an event older than the history kept."""
    if not record.history and record.at > -(2**62):  # a record written before the history was kept
        record.history = [Stint(record.at, record.event_id, record.state, record.queues)]
    if event.at < record.kept_from:
        return None
    stint = Stint(event.at, event.event_id, shared(event.state or "offline"),
                  shared(tuple(sorted(set(event.queues or ())))), shared(event.reason))  # fmt: skip
    found = insert_at(record.history, stint)
    latest = record.history[-1]
    record.at, record.event_id, record.state, record.queues = latest.at, latest.event_id, latest.state, latest.queues
    return found


def agent_reports(record: AgentRecord, agent_id: str) -> list[Report]:
    """The agent's reports from its current state: its state in each queue it serves, and a clear
    for each queue it was reported to before and serves no longer."""
    agent = f"agent:{agent_id}"
    reports = [Report(agent, queue, agent_state=record.state) for queue in record.queues]
    reports += [Report(agent, queue) for queue in record.reported_queues if queue not in record.queues]
    record.reported_queues = tuple(sorted(set(record.reported_queues) | set(record.queues)))
    return reports


@dataclass
class Health:
    duplicates: int = 0
    conflicts: int = 0


@dataclass
class Engine:
    """All stages in one process: feed it (event, source) pairs in any order."""

    targets: Targets = field(default_factory=Targets)
    contacts: dict[str, ContactRecord] = field(default_factory=dict)
    agents: dict[str, AgentRecord] = field(default_factory=dict)
    issues: dict[str, IssueGroup] = field(default_factory=dict)
    board: Board = field(default_factory=Board)
    health: Health = field(default_factory=Health)
    clock_us: int = 0
    issue_backlog: list[IssueUpdate] = field(default_factory=list)
    # (contact_id, issue key) -> (link, version): the ``contact_issues`` table
    contact_issues: dict[tuple[str, str], tuple[IssueLink, int]] = field(default_factory=dict)

    def process(self, event: Event, source: str) -> None:
        self.clock_us = max(self.clock_us, event.at)
        if event.type == "agent.state_changed":
            record = self.agents.setdefault(event.agent_id or "", AgentRecord())
            self._send(agent_step(record, event))
            return
        contact_id = event.contact_id or ""
        contact = self.contacts.setdefault(contact_id, ContactRecord())
        outcome = contact_step(contact, contact_id, event, source, self.targets)
        if outcome.new:
            self.health.duplicates += outcome.duplicate
            self.health.conflicts += outcome.conflict
        self._send(outcome.reports)
        for update in outcome.issue_updates:
            group_record = self.issues.setdefault(update.key, IssueGroup())
            found = issue_step(group_record, update, self.targets)
            self._send(found.reports)
            self._link(found.links, group_record.version)

    def process_batch(
        self, messages: Iterable[tuple[Event, str]], issue_partitions: Collection[int] | None = None
    ) -> None:
        """A batch as the worker's contacts stage takes one (:class:`ContactBatch`), then the board
        applies each key's last report. The issue updates wait in :attr:`issue_backlog` until the
        issues stage takes the partitions they are on (``issue_partitions``; None: all of them, at
        once)."""

        def load(key: str) -> ContactRecord | AgentRecord | None:
            kind, identifier = key.split("\x1f", 1)
            return (self.contacts if kind == "contact" else self.agents).get(identifier)

        batch = ContactBatch(self.targets, load)
        for event, source in messages:
            batch.event(source, event, new=True)
        for key, record in batch.records.items():
            kind, identifier = key.split("\x1f", 1)
            if isinstance(record, ContactRecord):
                self.contacts[identifier] = record
            else:
                self.agents[identifier] = record
        self.clock_us = max(self.clock_us, batch.latest_at)
        self.health.duplicates += batch.duplicates
        self.health.conflicts += batch.conflicts
        latest: dict[str, Report] = {}
        for _, reports, updates in batch.outcome():
            latest.update((report.key, report) for report in reports)
            self.issue_backlog += updates
        self._send(latest.values())
        self.process_issues(issue_partitions)

    def process_issues(self, partitions: Collection[int] | None = None) -> None:
        """The issues stage takes the waiting updates of ``partitions`` (of ISSUE_PARTITIONS; None:
        all) as one batch: each key's outcome once, rows and links only for what changed."""

        def due(update: IssueUpdate) -> bool:
            return partitions is None or self.issue_partition(update.key) in partitions

        taken = [update for update in self.issue_backlog if due(update)]
        self.issue_backlog = [update for update in self.issue_backlog if not due(update)]
        batch = IssueBatch(self.targets, lambda key: self.issues.setdefault(key, IssueGroup()))
        for update in taken:
            batch.apply(update)
        latest: dict[str, Report] = {}
        for key in batch.groups:
            found = batch.outcome(key)
            latest.update((report.key, report) for report in found.reports)
            self._link(found.links, batch.groups[key].version)
        self._send(latest.values())

    def issue_of(self, contact_id: str) -> IssueLink | None:
        """The contact's issue as the ``contacts`` view shows it: the row of the key it is in now."""
        record = self.contacts.get(contact_id)
        if record is None:
            return None
        joined = contribution(record.state, contact_id, self.targets).issue
        found = self.contact_issues.get((contact_id, joined.key)) if joined is not None else None
        return found[0] if found is not None else None

    def _link(self, links: Iterable[IssueLink], version: int) -> None:
        for link in links:  # ReplacingMergeTree: the greater version wins, ties the later
            known = self.contact_issues.get((link.contact_id, link.key))
            if known is None or version >= known[1]:
                self.contact_issues[(link.contact_id, link.key)] = (link, version)

    @staticmethod
    def issue_partition(key: str) -> int:
        return partition_of(key, ISSUE_PARTITIONS)

    def _send(self, reports: Iterable[Report]) -> None:
        for report in reports:
            self.board.apply(report)
