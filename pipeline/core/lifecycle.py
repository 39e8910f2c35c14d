"""One contact's lifecycle, and what it contributes to the metrics (METRICS.md, EVENTS.md).

The state is a function of the *set* of messages received for the contact, never of their
order: for each event type the winning event is the one with the earliest ``occurred_at``
(ties: the smallest ``event_id``). Every message is identified by its source (topic partition
and offset); a message seen before is a replay after a crash and changes nothing, while a
different message for the same (contact, type) is a duplicate and is counted as one.

``contribution(state, targets)`` derives everything the contact adds to the metrics from the
state alone, so a consumer can replace a contact's previous contribution with the new one and
stay exact however often, and in whatever order, the contact's events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msgspec import Struct

from pipeline.core.contract import Event
from pipeline.core.counts import MICROS, Counts
from pipeline.core.targets import Targets
from pipeline.core.windows import minute_of


class Offered(Struct, array_like=True, frozen=True):
    at: int
    event_id: str
    queue: str
    channel: str
    customer_id: str
    reason: str
    case_id: str | None


class Answered(Struct, array_like=True, frozen=True):
    at: int
    event_id: str
    agent_id: str


class Abandoned(Struct, array_like=True, frozen=True):
    at: int
    event_id: str


class Ended(Struct, array_like=True, frozen=True):
    at: int
    event_id: str
    handle_us: int  # talk + hold + after-contact work, to the microsecond
    resolved: bool
    hold_us: int = 0  # of the handle time (last: records written before it decode as 0)


class Surveyed(Struct, array_like=True, frozen=True):
    at: int
    event_id: str
    csat: int | None
    nps: int | None
    ces: int | None


class Transferred(Struct, array_like=True, frozen=True):
    at: int
    event_id: str
    to_queue: str | None
    to_agent: str | None


class ContactState(Struct, array_like=True):
    offered: Offered | None = None
    answered: Answered | None = None
    abandoned: Abandoned | None = None
    ended: Ended | None = None
    survey: Surveyed | None = None
    # per event type, the sources (e.g. "3:1042", partition:offset) of the messages applied
    sources: dict[str, list[str]] = {}
    last_at: int = 0  # the latest occurred_at seen: expiry is measured from it
    transferred: Transferred | None = None  # last: records written before it decode as None

    @property
    def conflict(self) -> bool:
        """Both answered and abandoned: the earlier counts (ties: answered), the other does not."""
        return self.answered is not None and self.abandoned is not None


def handle_us(event: Event) -> int:
    return round(((event.talk_seconds or 0.0) + (event.hold_seconds or 0.0) + (event.acw_seconds or 0.0)) * MICROS)


def _fact(event: Event) -> Offered | Answered | Abandoned | Ended | Surveyed | Transferred:
    kind = event.type
    if kind == "contact.offered":
        return Offered(event.at, event.event_id, event.queue or "", event.channel or "", event.customer_id or "",
                       event.reason or "unspecified", event.case_id)  # fmt: skip
    if kind == "contact.answered":
        return Answered(event.at, event.event_id, event.agent_id or "")
    if kind == "contact.abandoned":
        return Abandoned(event.at, event.event_id)
    if kind == "contact.ended":
        hold = round((event.hold_seconds or 0.0) * MICROS)
        return Ended(event.at, event.event_id, handle_us(event), bool(event.resolved), hold)
    if kind == "contact.transferred":
        return Transferred(event.at, event.event_id, event.to_queue, event.to_agent)
    return Surveyed(event.at, event.event_id, event.csat, event.nps, event.ces)


SLOTS = {
    "contact.offered": "offered",
    "contact.answered": "answered",
    "contact.abandoned": "abandoned",
    "contact.ended": "ended",
    "survey.responded": "survey",
    "contact.transferred": "transferred",
}


def apply(state: ContactState, event: Event, source: str) -> bool:
    """Apply one message to the contact. Returns False for a replay (a source seen before)."""
    seen = state.sources.setdefault(event.type, [])
    if source in seen:
        return False
    seen.append(source)
    state.last_at = max(state.last_at, event.at)
    slot = SLOTS[event.type]
    current = getattr(state, slot)
    if current is None or (event.at, event.event_id) < (current.at, current.event_id):
        setattr(state, slot, _fact(event))
    return True


@dataclass
class Contribution:
    """Everything one contact adds: counts per minute, live waiting, and its part in issues."""

    queue: str | None = None
    channel: str | None = None
    minutes: dict[int, Counts] = field(default_factory=dict)
    waiting_since: int | None = None  # offered_at while waiting
    issue: IssueContact | None = None
    # the agent's part (issue 22): (agent_id, answered_at, ended_at or None, handle µs) of an
    # answered contact: on it until it ends, then handled by it
    agent: tuple[str, int, int | None, int] | None = None


class IssueContact(Struct, array_like=True, frozen=True):
    """An answered contact, as issue grouping (FCR, ART) needs it."""

    key: str
    contact_id: str
    offered_at: int
    queue: str
    channel: str
    ended_at: int | None
    resolved: bool | None


def issue_key(offered: Offered) -> str:
    """(customer_id, case_id) when a case is given, else (customer_id, reason)."""
    if offered.case_id is not None:
        return f"case\x1f{offered.customer_id}\x1f{offered.case_id}"
    return f"reason\x1f{offered.customer_id}\x1f{offered.reason}"


def contribution(state: ContactState, contact_id: str, targets: Targets) -> Contribution:
    offered = state.offered
    if offered is None:
        return Contribution()  # the other events wait for the offer
    result = Contribution(offered.queue, offered.channel)

    def bucket(at: int) -> Counts:
        minute = minute_of(at)
        counts = result.minutes.get(minute)
        if counts is None:
            counts = result.minutes[minute] = Counts()
        return counts

    answered, abandoned = state.answered, state.abandoned
    if answered is not None and abandoned is not None:  # a conflict: the earlier counts, ties to answered
        if abandoned.at < answered.at:
            answered = None
        else:
            abandoned = None
    handled_answer = answered  # handle time is work done, in hours or not
    threshold_us = targets.for_queue(offered.queue, offered.channel).threshold_us
    calendar = targets.calendar_for(offered.queue)
    closed = calendar is not None and not calendar.is_open(offered.at)
    if closed:
        bucket(offered.at).offered_out_of_hours += 1
    if closed and calendar is not None and not calendar.counted:  # apart: no offer, SL, ASA or abandon
        answered = abandoned = None
    else:
        bucket(offered.at).offered += 1
    if answered is not None:
        wait = max(0, answered.at - offered.at)
        counts = bucket(answered.at)
        counts.answered += 1
        counts.wait_us_sum += wait
        if state.transferred is not None:  # by the agent who answered: counted once, at its time
            bucket(state.transferred.at).transferred += 1
        if targets.waited_us(offered.queue, offered.channel, offered.at, answered.at) <= threshold_us:
            counts.answered_in_sl += 1
    if abandoned is not None:
        counts = bucket(abandoned.at)
        counts.abandoned += 1
        abandon_wait = max(0, abandoned.at - offered.at)
        if abandon_wait < targets.short_abandon_us:
            counts.short_abandoned += 1
        elif targets.waited_us(offered.queue, offered.channel, offered.at, abandoned.at) <= threshold_us:
            counts.abandoned_in_sl += 1
    ended = state.ended
    if ended is not None and handled_answer is not None:
        counts = bucket(ended.at)
        counts.handled += 1
        counts.handle_us_sum += ended.handle_us
        counts.hold_us_sum += ended.hold_us
    survey = state.survey
    if survey is not None:
        counts = bucket(survey.at)
        if survey.csat is not None:
            counts.csat_responses += 1
            counts.csat_positive += survey.csat >= 4
        if survey.nps is not None:
            counts.nps_responses += 1
            counts.nps_promoters += survey.nps >= 9
            counts.nps_detractors += survey.nps <= 6
        if survey.ces is not None:
            counts.ces_responses += 1
            counts.ces_sum += survey.ces
    if state.answered is None and state.abandoned is None and ended is None:
        result.waiting_since = offered.at
    if handled_answer is not None:
        ended_at = ended.at if ended is not None else None
        result.agent = (handled_answer.agent_id, handled_answer.at, ended_at, ended.handle_us if ended else 0)
    if answered is not None:
        result.issue = IssueContact(
            issue_key(offered), contact_id, offered.at, offered.queue, offered.channel,
            ended.at if ended is not None else None, ended.resolved if ended is not None else None,
        )  # fmt: skip
    return result
