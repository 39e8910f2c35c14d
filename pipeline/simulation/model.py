"""A discrete-event model of a contact center, producing contract-valid events in time order.

Pure and deterministic: ``start``, the profiles and the seed are parameters; nothing reads a
clock or does I/O. The same arguments always give the same events.

What it models:
- arrivals per queue follow an intraday curve (a non-homogeneous Poisson process, by thinning);
  voice, chat and in-person queues are open during the day only, email/sms/social arrive round
  the clock;
- agents in teams (voice, digital, back office, branch) with staggered 8-hour shifts sized from
  the curve, then scaled by ``staffing`` (below 1: service level really drops); breaks (``away``),
  after-contact work, and every state change as ``agent.state_changed``;
- routing: a free agent takes the longest-waiting contact of the queues it serves; the wait
  is what the agents' availability makes it;
- customer patience per channel (email and social never abandon), so abandonment and short
  abandons emerge from waits; handle times with talk, hold and after-contact work;
- resolution that gets less likely after a long wait; unresolved issues come back from the same
  customer about the same reason within days (repeat contacts), sometimes on another channel;
- surveys that respond to the wait and the resolution.
"""

from __future__ import annotations

import heapq
import math
import random
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count

from pipeline.timefmt import rfc3339

HOUR = 3600.0
DAY = 24 * HOUR

# Share of a day's contacts arriving in each UTC hour, by kind of queue (relative weights).
DAYTIME_CURVE = (0, 0, 0, 0, 0, 0, 0, 1, 4, 8, 10, 9, 7, 8, 9, 8, 7, 6, 4, 2, 0, 0, 0, 0)
ROUND_THE_CLOCK_CURVE = (1, 1, 1, 1, 1, 2, 3, 4, 6, 7, 8, 8, 7, 7, 7, 7, 6, 6, 5, 4, 3, 2, 2, 1)


# why an agent is away (agent.state_changed's reason), chosen by the break's second: no random draw,
# so that a seed gives the same center as before reasons were sent
BREAK_REASONS = ("break", "break", "meeting", "training")
TRANSFER_ONE_IN = 25  # answered contacts an agent transfers (contact.transferred at the talk's end)


@dataclass(frozen=True)
class QueueProfile:
    queue: str
    channel: str
    team: str
    contacts_per_day: float
    mean_talk_seconds: float
    mean_patience_seconds: float  # math.inf: never abandons
    resolution_rate: float
    reasons: tuple[str, ...]
    curve: tuple[int, ...] = DAYTIME_CURVE


@dataclass(frozen=True)
class TeamProfile:
    team: str
    shift_start_hour: int  # first shift starts here
    shift_end_hour: int  # last shift ends here
    concurrency: int = 1  # contacts one agent works at once (chat agents: 2)


DEFAULT_QUEUES: tuple[QueueProfile, ...] = (
    QueueProfile("billing", "voice", "voice", 2400, 280, 90, 0.78, ("invoice", "payment", "refund", "plan")),
    QueueProfile("support", "voice", "voice", 3000, 400, 120, 0.70, ("outage", "device", "setup", "slow")),
    QueueProfile("sales", "voice", "voice", 1200, 350, 75, 0.85, ("upgrade", "new_line", "offer")),
    QueueProfile("support_chat", "chat", "digital", 1500, 600, 240, 0.72, ("outage", "device", "setup")),
    QueueProfile("sales_chat", "chat", "digital", 600, 500, 180, 0.85, ("upgrade", "offer")),
    QueueProfile("sms_care", "sms", "digital", 300, 300, 3 * HOUR, 0.75, ("payment", "outage"),
                 ROUND_THE_CLOCK_CURVE),
    QueueProfile("social_care", "social", "digital", 200, 420, math.inf, 0.65, ("complaint", "outage"),
                 ROUND_THE_CLOCK_CURVE),
    QueueProfile("claims_email", "email", "backoffice", 800, 480, math.inf, 0.6, ("claim", "refund", "invoice"),
                 ROUND_THE_CLOCK_CURVE),
    QueueProfile("branch", "in_person", "branch", 150, 600, 900, 0.9, ("device", "new_line", "payment")),
)  # fmt: skip

DEFAULT_TEAMS: tuple[TeamProfile, ...] = (
    TeamProfile("voice", 7, 21),
    TeamProfile("digital", 7, 21, concurrency=2),
    TeamProfile("backoffice", 8, 18),
    TeamProfile("branch", 8, 19),
)

TARGET_OCCUPANCY = 0.82
# From the agent taking a contact to the customer noticing (ringing, typing the first reply).
PICKUP_SECONDS = {"voice": (2, 6), "chat": (3, 20), "sms": (5, 60), "social": (30, 300),
                  "email": (60, 600), "in_person": (10, 40)}  # fmt: skip


@dataclass
class Contact:
    contact_id: str
    queue: QueueProfile
    customer_id: str
    reason: str
    case_id: str | None
    offered_at: float
    patience: float
    answered: bool = False
    gone: bool = False  # abandoned


@dataclass
class Agent:
    agent_id: str
    team: TeamProfile
    queues: tuple[str, ...]
    shift_start: float
    shift_end: float
    busy: int = 0  # contacts in progress (talk or after-contact work)
    state: str = "offline"
    in_free_list: bool = False

    def has_room(self, at: float) -> bool:
        return (
            self.state in ("available", "on_contact", "after_contact_work")
            and self.busy < self.team.concurrency
            and at < self.shift_end
        )


@dataclass
class Simulation:
    start: datetime
    seed: int = 1
    queues: tuple[QueueProfile, ...] = DEFAULT_QUEUES
    teams: tuple[TeamProfile, ...] = DEFAULT_TEAMS
    scale: float = 1.0  # multiplies every queue's volume (and the staff sized for it)
    staffing: float = 1.0  # multiplies the staff only: below 1, service level drops
    customers: int = 20_000
    utc_offset_hours: float = 0  # the center's local time: its day curve and shifts follow it
    repeat_window_days: float = 7.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._agenda: list[tuple[float, int, str, object]] = []
        self._serial = count()
        self._contact_serial = count(1)
        self._event_serial = count(1)
        self._waiting: dict[str, deque[Contact]] = {q.queue: deque() for q in self.queues}
        self._agents: list[Agent] = []
        self._free: dict[str, deque[Agent]] = {t.team: deque() for t in self.teams}
        self._team_queues: dict[str, tuple[str, ...]] = {
            t.team: tuple(q.queue for q in self.queues if q.team == t.team) for t in self.teams
        }

    # ------------------------------------------------------------------------------------
    def events(self, duration: timedelta) -> Iterator[dict[str, object]]:
        """Events of contacts offered in ``[start, start + duration)``, in ``occurred_at`` order.

        Contacts in progress at the end are finished (ended, surveyed) and agents go offline at
        the end of their shifts; a contact still waiting when the last shift ends stays waiting
        (or abandons, if its channel's customers give up).
        """
        horizon = duration.total_seconds()
        self._staff(horizon)
        for profile in self.queues:
            self._schedule_next_arrival(profile, 0.0, horizon)
        while self._agenda:
            at, _, kind, subject = heapq.heappop(self._agenda)
            yield from getattr(self, f"_on_{kind}")(at, subject, horizon)

    # ------------------------------------------------------------------------------------
    def _at(self, seconds: float) -> str:
        return rfc3339(self.start + timedelta(seconds=round(seconds, 3)))

    def _event(self, at: float, kind: str, **fields: object) -> dict[str, object]:
        return {"event_id": f"sim{self.seed}-{next(self._event_serial)}", "type": kind, "schema_version": 1,
                "occurred_at": self._at(at), **fields}  # fmt: skip

    def _schedule(self, at: float, kind: str, subject: object) -> None:
        heapq.heappush(self._agenda, (at, next(self._serial), kind, subject))

    def _rate_per_second(self, profile: QueueProfile, at: float) -> float:
        hour = int(((self._day_offset() + at) % DAY) // HOUR)  # the local hour at `at`
        return profile.contacts_per_day * self.scale * profile.curve[hour] / sum(profile.curve) / HOUR

    def _schedule_next_arrival(self, profile: QueueProfile, after: float, horizon: float) -> None:
        peak = profile.contacts_per_day * self.scale * max(profile.curve) / sum(profile.curve) / HOUR
        at = after
        while True:  # thinning: candidates at the peak rate, kept in proportion to the rate then
            at += self.rng.expovariate(peak)
            if at >= horizon:
                return
            if self.rng.random() * peak <= self._rate_per_second(profile, at):
                self._schedule(at, "arrival", profile)
                return

    # Staffing: per team and hour, the agents the offered load needs, as staggered shifts.
    def _staff(self, horizon: float) -> None:
        days = int(horizon // DAY) + 2
        serial = count(1)
        for team in self.teams:
            members = [q for q in self.queues if q.team == team.team]
            if not members:
                continue
            names = tuple(q.queue for q in members)
            for day in range(-1, days):
                on_shift: list[float] = []  # shift ends of agents already scheduled
                for hour in range(team.shift_start_hour, team.shift_end_hour):
                    load = 0.0
                    for q in members:
                        share = q.curve[hour] / sum(q.curve)
                        load += q.contacts_per_day * self.scale * share * (q.mean_talk_seconds + 45) / HOUR
                    needed = math.ceil(load / TARGET_OCCUPANCY / team.concurrency * self.staffing)
                    shift_start = day * DAY + hour * HOUR - self._day_offset()
                    on_shift = [end for end in on_shift if end > shift_start]
                    for _ in range(max(0, needed - len(on_shift))):
                        end = min(
                            shift_start + 8 * HOUR,
                            day * DAY + team.shift_end_hour * HOUR - self._day_offset(),
                        )
                        agent = Agent(f"{team.team}-{next(serial):04d}", team, names, shift_start, end)
                        on_shift.append(end)
                        if end > 0 and shift_start < horizon:
                            self._agents.append(agent)
                            self._schedule(max(shift_start, 0.0), "shift_start", agent)

    def _day_offset(self) -> float:
        """Seconds from the center's local midnight to ``start``."""
        local = self.start + timedelta(hours=self.utc_offset_hours)
        return (local - local.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()

    # ------------------------------------------------------------------------------------
    # Handlers: each yields the events that happen at `at`.
    def _on_arrival(self, at: float, profile: QueueProfile, horizon: float) -> Iterator[dict[str, object]]:
        self._schedule_next_arrival(profile, at, horizon)
        customer = f"cust-{self.rng.randrange(self.customers):06d}"
        reason = self.rng.choice(profile.reasons)
        case_id = f"CASE-{self.seed}-{self.rng.randrange(10**8):08d}" if profile.channel == "email" else None
        yield from self._offer(at, profile, customer, reason, case_id)

    def _offer(
        self, at: float, profile: QueueProfile, customer: str, reason: str, case_id: str | None
    ) -> Iterator[dict[str, object]]:
        contact = Contact(f"{profile.queue}-{self.seed}-{next(self._contact_serial)}", profile, customer, reason,
                          case_id, at, self.rng.expovariate(1 / profile.mean_patience_seconds)
                          if math.isfinite(profile.mean_patience_seconds) else math.inf)  # fmt: skip
        fields: dict[str, object] = {"contact_id": contact.contact_id, "channel": profile.channel,
                                     "queue": profile.queue, "customer_id": customer, "reason": reason}  # fmt: skip
        if case_id:
            fields["case_id"] = case_id
        yield self._event(at, "contact.offered", **fields)
        if math.isfinite(contact.patience):
            self._schedule(at + contact.patience, "patience_out", contact)
        yield from self._route(at, contact)

    def _on_patience_out(self, at: float, contact: Contact, horizon: float) -> Iterator[dict[str, object]]:
        if contact.answered or contact.gone:
            return
        contact.gone = True
        self._waiting[contact.queue.queue].remove(contact)
        yield self._event(at, "contact.abandoned", contact_id=contact.contact_id)

    def _route(self, at: float, contact: Contact) -> Iterator[dict[str, object]]:
        """A new contact goes to the agent of its team who has been free longest, or waits."""
        free = self._free[contact.queue.team]
        while free:
            agent = free[0]
            if not agent.has_room(at):
                free.popleft()
                agent.in_free_list = False
                continue
            yield from self._answer(at, agent, contact)
            if not agent.has_room(at):
                free.popleft()
                agent.in_free_list = False
            return
        self._waiting[contact.queue.queue].append(contact)

    def _take_work(self, at: float, agent: Agent) -> Iterator[dict[str, object]]:
        """An agent with room takes the longest-waiting contacts of its queues, else joins the free list."""
        while agent.has_room(at):
            candidates = [self._waiting[q][0] for q in agent.queues if self._waiting[q]]
            if not candidates:
                break
            contact = min(candidates, key=lambda c: c.offered_at)
            self._waiting[contact.queue.queue].popleft()
            yield from self._answer(at, agent, contact)
        if agent.has_room(at) and not agent.in_free_list:
            agent.in_free_list = True
            self._free[agent.team.team].append(agent)

    def _answer(self, at: float, agent: Agent, contact: Contact) -> Iterator[dict[str, object]]:
        contact.answered = True  # reserved now: patience can no longer run out
        agent.busy += 1
        if agent.state != "on_contact":
            agent.state = "on_contact"
            yield self._agent_event(at, agent)
        pickup = self.rng.uniform(*PICKUP_SECONDS[contact.queue.channel])
        answered_at = at + pickup
        if contact.offered_at + contact.patience < answered_at:  # reached them just in time
            answered_at = max(at, contact.offered_at + contact.patience - 0.5)
        self._schedule(answered_at, "answered", (agent, contact))

    def _on_answered(self, at: float, job: tuple, horizon: float) -> Iterator[dict[str, object]]:  # type: ignore[type-arg]
        agent, contact = job
        yield self._event(at, "contact.answered", contact_id=contact.contact_id, agent_id=agent.agent_id)
        talk = self.rng.lognormvariate(math.log(contact.queue.mean_talk_seconds) - 0.18, 0.6)
        hold = self.rng.uniform(10, 120) if self.rng.random() < 0.25 else 0.0
        acw = self.rng.uniform(10, 90)
        self._schedule(at + talk + hold, "talk_end", (agent, contact, talk, hold, acw, at))

    def _on_talk_end(self, at: float, job: tuple, horizon: float) -> Iterator[dict[str, object]]:  # type: ignore[type-arg]
        agent, contact, talk, hold, acw, answered_at = job
        if zlib.crc32(contact.contact_id.encode()) % TRANSFER_ONE_IN == 0:  # no random draw: seeds stay
            others = [q.queue for q in self.queues if q.channel == contact.queue.channel and q is not contact.queue]
            target = {"to_queue": others[0]} if others else {}
            yield self._event(at, "contact.transferred", contact_id=contact.contact_id, **target)
        if agent.busy == 1 and agent.state != "after_contact_work":
            agent.state = "after_contact_work"
            yield self._agent_event(at, agent)
        self._schedule(at + acw, "contact_done", job)

    def _on_contact_done(self, at: float, job: tuple, horizon: float) -> Iterator[dict[str, object]]:  # type: ignore[type-arg]
        agent, contact, talk, hold, acw, answered_at = job
        wait = answered_at - contact.offered_at
        threshold = {"voice": 20, "chat": 30, "sms": 300, "social": 3600, "email": 86400}.get(
            contact.queue.channel, 300
        )
        p_resolved = contact.queue.resolution_rate - (0.12 if wait > threshold else 0.0)
        resolved = self.rng.random() < p_resolved
        yield self._event(at, "contact.ended", contact_id=contact.contact_id, talk_seconds=round(talk, 1),
                          hold_seconds=round(hold, 1), acw_seconds=round(acw, 1), resolved=resolved)  # fmt: skip
        if self.rng.random() < 0.22:
            self._schedule(at + self.rng.uniform(60, 2 * HOUR), "survey", (contact, wait, resolved, threshold))
        if self.rng.random() < (0.55 if not resolved else 0.04):
            back_in = self.rng.expovariate(1 / (1.5 * DAY))
            if at + back_in < horizon:
                self._schedule(at + back_in, "repeat", contact)
        agent.busy -= 1
        if agent.busy:
            if agent.state != "on_contact":
                agent.state = "on_contact"
                yield self._agent_event(at, agent)
        elif at >= agent.shift_end:
            agent.state = "offline"
            yield self._agent_event(at, agent)
            return
        elif self.rng.random() < 0.06:  # a short break
            agent.state = "away"
            yield self._agent_event(at, agent, BREAK_REASONS[int(at) % len(BREAK_REASONS)])
            self._schedule(at + self.rng.uniform(5 * 60, 15 * 60), "break_end", agent)
            return
        elif agent.state != "available":
            agent.state = "available"
            yield self._agent_event(at, agent)
        yield from self._take_work(at, agent)

    def _on_break_end(self, at: float, agent: Agent, horizon: float) -> Iterator[dict[str, object]]:
        agent.state = "offline" if at >= agent.shift_end else "available"
        yield self._agent_event(at, agent)
        yield from self._take_work(at, agent)

    def _on_shift_start(self, at: float, agent: Agent, horizon: float) -> Iterator[dict[str, object]]:
        agent.state = "available"
        yield self._agent_event(at, agent)
        self._schedule(agent.shift_end, "shift_end", agent)
        yield from self._take_work(at, agent)

    def _on_shift_end(self, at: float, agent: Agent, horizon: float) -> Iterator[dict[str, object]]:
        if agent.busy == 0 and agent.state in ("available", "away"):
            agent.state = "offline"  # on a break at the end of the shift: gone home
            yield self._agent_event(at, agent)

    def _on_survey(self, at: float, job: tuple, horizon: float) -> Iterator[dict[str, object]]:  # type: ignore[type-arg]
        contact, wait, resolved, threshold = job
        mood = (0.8 if resolved else -0.9) - min(wait / max(threshold, 1), 3) * 0.35 + self.rng.gauss(0, 0.7)
        scores: dict[str, object] = {}
        if self.rng.random() < 0.9:
            scores["csat"] = min(5, max(1, round(3.6 + mood)))
        if self.rng.random() < 0.7:
            scores["nps"] = min(10, max(0, round(7.2 + 2.2 * mood)))
        if self.rng.random() < 0.5 or not scores:
            scores["ces"] = min(7, max(1, round(5 + 1.3 * mood)))
        yield self._event(at, "survey.responded", contact_id=contact.contact_id, **scores)

    def _on_repeat(self, at: float, previous: Contact, horizon: float) -> Iterator[dict[str, object]]:
        profile = previous.queue
        if self.rng.random() < 0.2:  # switches channel, same kind of reason where one fits
            others = [q for q in self.queues if previous.reason in q.reasons and q is not profile]
            profile = self.rng.choice(others) if others else profile
        if self._rate_per_second(profile, at) == 0:
            return  # the queue is closed at that hour: the customer gives up on it
        case_id = previous.case_id if profile.channel == "email" else None
        yield from self._offer(at, profile, previous.customer_id, previous.reason, case_id)

    def _agent_event(self, at: float, agent: Agent, reason: str | None = None) -> dict[str, object]:
        extra = {"reason": reason} if reason is not None else {}
        return self._event(at, "agent.state_changed", agent_id=agent.agent_id, state=agent.state,
                           queues=list(agent.queues), **extra)  # fmt: skip
