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

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
from msgspec import Struct

from pipeline.core.board import Board, Report, minutes_payload
from pipeline.core.contract import Event
from pipeline.core.issues import contributions as issue_contributions
from pipeline.core.issues import group
from pipeline.core.lifecycle import ContactState, IssueContact, apply, contribution
from pipeline.core.targets import Targets


class ContactRecord(Struct, array_like=True):
    state: ContactState = msgspec.field(default_factory=ContactState)
    # every queue and issue key ever reported to: a clear lost in a crash is sent again
    reported_queues: list[str] = []
    reported_issue_keys: list[str] = []


class IssueUpdate(Struct, array_like=True, frozen=True):
    key: str
    contact_id: str
    contact: IssueContact | None  # None: the contact no longer takes part in this key


class IssueGroup(Struct, array_like=True):
    contacts: dict[str, IssueContact] = {}
    reported_queues: list[str] = []
    last_at: int = 0


class AgentRecord(Struct, array_like=True):
    at: int = -(2**62)
    event_id: str = ""
    state: str = "offline"
    queues: tuple[str, ...] = ()
    reported_queues: tuple[str, ...] = ()


@dataclass
class ContactOutcome:
    reports: list[Report]
    issue_updates: list[IssueUpdate]
    new: bool  # False: a replay of a message already applied
    duplicate: bool  # the message is a duplicate of an earlier one for the same (contact, type)
    conflict: bool  # the message made the contact both answered and abandoned


def contact_step(record: ContactRecord, contact_id: str, event: Event, source: str, targets: Targets) -> ContactOutcome:
    state = record.state
    had_conflict = state.conflict
    new = apply(state, event, source)
    seen = state.sources[event.type]
    duplicate = seen.index(source) > 0
    conflict = state.conflict and not had_conflict
    reports, updates = contact_reports(record, contact_id, targets)
    return ContactOutcome(reports, updates, new, duplicate, conflict)


def contact_reports(record: ContactRecord, contact_id: str, targets: Targets) -> tuple[list[Report], list[IssueUpdate]]:
    """The contact's current reports (and clears for a queue or issue key it left)."""
    found = contribution(record.state, contact_id, targets)
    source = f"contact:{contact_id}"
    reports: list[Report] = []
    if found.queue is not None and found.channel is not None:
        waiting = ((found.channel, found.waiting_since),) if found.waiting_since is not None else ()
        reports.append(Report(source, found.queue, minutes_payload(found.channel, found.minutes), waiting))
    # an earlier offer may have named another queue (or customer, reason, case): clear it there
    reports += [Report(source, queue) for queue in record.reported_queues if queue != found.queue]
    if found.queue is not None and found.queue not in record.reported_queues:
        record.reported_queues.append(found.queue)
    updates: list[IssueUpdate] = []
    key = found.issue.key if found.issue is not None else None
    if key is not None:
        updates.append(IssueUpdate(key, contact_id, found.issue))
    updates += [IssueUpdate(old, contact_id, None) for old in record.reported_issue_keys if old != key]
    if key is not None and key not in record.reported_issue_keys:
        record.reported_issue_keys.append(key)
    return reports, updates


def issue_step(record: IssueGroup, update: IssueUpdate, targets: Targets) -> list[Report]:
    if update.contact is None:
        record.contacts.pop(update.contact_id, None)
    else:
        record.contacts[update.contact_id] = update.contact
        record.last_at = max(record.last_at, update.contact.ended_at or update.contact.offered_at)
    per_line = issue_contributions(group(record.contacts.values(), targets.fcr_window_us))
    source = f"issue:{update.key}"
    by_queue: dict[str, list[tuple[str, int, tuple[int, ...]]]] = {}
    for (queue, channel), minutes in per_line.items():
        by_queue.setdefault(queue, []).extend(minutes_payload(channel, minutes))
    reports = [Report(source, queue, tuple(sorted(entries))) for queue, entries in sorted(by_queue.items())]
    reports += [Report(source, queue) for queue in record.reported_queues if queue not in by_queue]
    record.reported_queues = sorted(set(record.reported_queues) | set(by_queue))
    return reports


def agent_step(record: AgentRecord, event: Event) -> list[Report]:
    """The agent's latest state (by event time; ties: the larger event_id) in each queue it serves.

    Idempotent as it stands: applying an event again, or an older one, changes nothing.
    """
    if (event.at, event.event_id) > (record.at, record.event_id):
        record.at, record.event_id = event.at, event.event_id
        record.state = event.state or "offline"
        record.queues = tuple(sorted(set(event.queues or ())))
    agent = f"agent:{event.agent_id}"
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
            self._send(issue_step(group_record, update, self.targets))

    def _send(self, reports: Iterable[Report]) -> None:
        for report in reports:
            self.board.apply(report)
