"""A brute-force model of METRICS.md: the definitions applied to the whole set of events at once.

Deliberately naive and independent of pipeline.core (no buckets, no reports, no incremental
state): it looks at every event every time. Tests compare the pipeline to it.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.core.contract import Event
from pipeline.core.targets import Targets

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COUNT_FIELDS = (
    "offered", "answered", "answered_in_sl", "abandoned", "short_abandoned", "wait_us_sum", "handled",
    "handle_us_sum", "csat_responses", "csat_positive", "nps_responses", "nps_promoters", "nps_detractors",
    "ces_responses", "ces_sum", "issues_judged", "issues_fcr", "issues_resolved", "resolution_us_sum",
    "abandoned_in_sl", "offered_out_of_hours", "hold_us_sum", "transferred",
)  # fmt: skip


def as_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def in_window(at_us: int, now_us: int, window: str, zone: ZoneInfo, starts: time = time(0, 0)) -> bool:
    """Does the minute floor(at) lie in the window ending at floor(now)? ``today`` begins at the
    last local ``starts`` (in ``zone``) at or before now."""
    minute = as_datetime(at_us).replace(second=0, microsecond=0)
    last = as_datetime(now_us).replace(second=0, microsecond=0)
    if minute > last:
        return False
    if window == "15m":
        return minute >= last - timedelta(minutes=14)
    if window == "1h":
        return minute >= last - timedelta(minutes=59)
    local = as_datetime(now_us).astimezone(zone)
    start = local.replace(hour=starts.hour, minute=starts.minute, second=0, microsecond=0, fold=0)
    if start > as_datetime(now_us):  # aware datetimes compare as instants
        start = (local - timedelta(days=1)).replace(hour=starts.hour, minute=starts.minute, second=0,
                                                    microsecond=0, fold=0)  # fmt: skip
    return minute >= start


@functools.lru_cache(maxsize=16)
def country_holidays(country: str, subdivision: str | None) -> Any:
    import holidays

    return holidays.country_holidays(country, subdiv=subdivision)


def closed_at(calendar: Any, at_us: int) -> bool:
    """Is the queue closed at ``at``: a closed date, a public holiday of its country (the holidays
    package), or outside every range of its weekday, in its own zone?"""
    local = as_datetime(at_us).astimezone(calendar.zone)
    if local.date() in calendar.closed:
        return True
    if calendar.country and local.date() in country_holidays(calendar.country, calendar.subdivision):
        return True
    seconds = local.hour * 3600 + local.minute * 60 + local.second  # the wall clock
    return not any(start <= seconds < end for start, end in calendar.hours[local.weekday()])


def business_us(calendar: Any, start_us: int, end_us: int) -> int:
    """The time of [start_us, end_us) the queue was open: minute by minute (hours and zone offsets
    are whole minutes), each minute open or closed as :func:`closed_at` says."""
    total, minute = 0, start_us - start_us % 60_000_000
    while minute < end_us:
        piece = min(minute + 60_000_000, end_us) - max(minute, start_us)
        total += 0 if closed_at(calendar, max(minute, start_us)) else piece
        minute += 60_000_000
    return total


def sl_wait(targets: Targets, queue: str, channel: str, start_us: int, end_us: int) -> int:
    """The wait the threshold reads: business time with ``sl_business_hours`` and hours, else elapsed."""
    calendar = targets.calendar_for(queue)
    if calendar is not None and targets.for_queue(queue, channel).business_hours:
        return business_us(calendar, start_us, end_us)
    return max(0, end_us - start_us)


@dataclass
class Expected:
    counts: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)  # (queue, channel, window)
    waiting: dict[tuple[str, str], tuple[int, int | None]] = field(default_factory=dict)
    agents: dict[tuple[str, str], int] = field(default_factory=dict)
    agent_time: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (queue, window) -> µs per state
    waits: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (queue, channel) -> each waiting's wait
    promise_waits: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # the same, as the threshold reads
    duplicates: int = 0
    conflicts: int = 0


def model(messages: list[tuple[Event, str]], now_us: int, zone: ZoneInfo, targets: Targets) -> Expected:
    distinct = {source: event for event, source in messages}  # a replayed source is one message
    expected = Expected()

    # winners per (contact, type): earliest occurred_at, ties: smallest event_id
    by_key: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in distinct.values():
        if event.type != "agent.state_changed":
            by_key[(event.contact_id or "", event.type)].append(event)
    expected.duplicates = sum(len(group) - 1 for group in by_key.values())
    winner = {key: min(group, key=lambda e: (e.at, e.event_id)) for key, group in by_key.items()}
    contacts = {contact for contact, _ in winner}
    expected.conflicts = sum(
        1 for c in contacts if (c, "contact.answered") in winner and (c, "contact.abandoned") in winner
    )

    contributions: list[tuple[str, str, int, str, int]] = []  # queue, channel, at, field, amount
    answered_contacts = []
    for contact in contacts:
        offered = winner.get((contact, "contact.offered"))
        if offered is None:
            continue
        queue, channel = offered.queue or "", offered.channel or ""
        answered = winner.get((contact, "contact.answered"))
        abandoned = winner.get((contact, "contact.abandoned"))
        ended = winner.get((contact, "contact.ended"))
        survey = winner.get((contact, "survey.responded"))
        if answered and abandoned:
            if answered.at <= abandoned.at:
                abandoned = None
            else:
                answered = None

        def add(at: int, name: str, amount: int = 1, queue: str = queue, channel: str = channel) -> None:
            contributions.append((queue, channel, at, name, amount))

        threshold_us = targets.for_queue(queue, channel).threshold_seconds * 1_000_000
        handled = answered
        hours = targets.calendar_for(queue)
        if hours is not None and closed_at(hours, offered.at):
            add(offered.at, "offered_out_of_hours")
            if not hours.counted:
                answered = abandoned = None
        if hours is None or not closed_at(hours, offered.at) or hours.counted:
            add(offered.at, "offered")
        if answered:
            wait = max(0, answered.at - offered.at)
            add(answered.at, "answered")
            add(answered.at, "wait_us_sum", wait)
            if sl_wait(targets, queue, channel, offered.at, answered.at) <= threshold_us:
                add(answered.at, "answered_in_sl")
            transferred = winner.get((contact, "contact.transferred"))
            if transferred:
                add(transferred.at, "transferred")
            answered_contacts.append((offered, answered, ended))
        if abandoned:
            add(abandoned.at, "abandoned")
            abandon_wait = max(0, abandoned.at - offered.at)
            if abandon_wait < targets.short_abandon_seconds * 1_000_000:
                add(abandoned.at, "short_abandoned")
            elif sl_wait(targets, queue, channel, offered.at, abandoned.at) <= threshold_us:
                add(abandoned.at, "abandoned_in_sl")
        if ended and handled:
            add(ended.at, "handled")
            seconds = (ended.talk_seconds or 0) + (ended.hold_seconds or 0) + (ended.acw_seconds or 0)
            add(ended.at, "handle_us_sum", round(seconds * 1_000_000))
            add(ended.at, "hold_us_sum", round((ended.hold_seconds or 0) * 1_000_000))
        if survey:
            if survey.csat is not None:
                add(survey.at, "csat_responses")
                add(survey.at, "csat_positive", int(survey.csat >= 4))
            if survey.nps is not None:
                add(survey.at, "nps_responses")
                add(survey.at, "nps_promoters", int(survey.nps >= 9))
                add(survey.at, "nps_detractors", int(survey.nps <= 6))
            if survey.ces is not None:
                add(survey.at, "ces_responses")
                add(survey.at, "ces_sum", survey.ces)
        still_waiting = not (winner.get((contact, "contact.answered")) or winner.get((contact, "contact.abandoned"))
                             or ended)  # fmt: skip
        if still_waiting and now_us - offered.at <= 7 * 86400 * 1_000_000:
            count, oldest = expected.waiting.get((queue, channel), (0, None))
            wait = now_us - offered.at
            expected.waiting[(queue, channel)] = (count + 1, wait if oldest is None else max(oldest, wait))
            expected.waits.setdefault((queue, channel), []).append(wait)
            promised = sl_wait(targets, queue, channel, offered.at, now_us)
            expected.promise_waits.setdefault((queue, channel), []).append(promised)
        expected.waiting.setdefault((queue, channel), (0, None))

    # issues
    window_us = targets.fcr_window_days * 86400 * 1_000_000
    keyed: dict[tuple[str, str, str], list] = defaultdict(list)  # type: ignore[type-arg]
    for offered, _answered, ended in answered_contacts:
        kind = ("case", offered.customer_id, offered.case_id) if offered.case_id is not None else (
            "reason", offered.customer_id, offered.reason)  # fmt: skip
        keyed[kind].append((offered, ended))  # type: ignore[index]
    for members in keyed.values():
        members.sort(key=lambda pair: (pair[0].at, pair[0].contact_id))
        issues: list[list] = []  # type: ignore[type-arg]
        for pair in members:
            if issues and pair[0].at - issues[-1][0][0].at <= window_us:
                issues[-1].append(pair)
            else:
                issues.append([pair])
        for issue in issues:
            opening, opening_end = issue[0]
            queue, channel, opened_at = opening.queue or "", opening.channel or "", opening.at
            if opening_end is not None:
                contributions.append((queue, channel, opening_end.at, "issues_judged", 1))
                fcr = bool(opening_end.resolved) and len(issue) == 1
                contributions.append((queue, channel, opening_end.at, "issues_fcr", int(fcr)))
            resolving = [end for _, end in issue if end is not None and end.resolved]
            if resolving:
                end = resolving[0]
                contributions.append((queue, channel, end.at, "issues_resolved", 1))
                contributions.append((queue, channel, end.at, "resolution_us_sum", max(0, end.at - opened_at)))

    lines = {(q, c) for q, c, *_ in contributions} | set(expected.waiting)
    for queue, channel in lines:
        for window in ("15m", "1h", "today"):
            expected.counts[(queue, channel, window)] = dict.fromkeys(COUNT_FIELDS, 0)
    for queue, channel, at, name, amount in contributions:
        own_zone, own_start = targets.queue_days.get(queue, (None, None))
        day = (own_zone or zone, own_start if own_start is not None else targets.day_starts)
        for window in ("15m", "1h", "today"):
            if in_window(at, now_us, window, *day):
                expected.counts[(queue, channel, window)][name] += amount

    # agents: the latest state by event time (ties: the larger event_id)
    latest: dict[str, Event] = {}
    for event in distinct.values():
        if event.type == "agent.state_changed":
            current = latest.get(event.agent_id or "")
            if current is None or (event.at, event.event_id) > (current.at, current.event_id):
                latest[event.agent_id or ""] = event
    for event in latest.values():
        if event.state != "offline":
            for queue in set(event.queues or ()):
                expected.agents[(queue, event.state or "")] = expected.agents.get((queue, event.state or ""), 0) + 1
    expected.agent_time = {
        key: spent for key, spent in agent_time(messages, now_us, zone, targets).items() if any(spent)
    }
    return expected


# ------------------------------------------------------------------ agents (issue 22)
TIMED = ("available", "on_contact", "after_contact_work", "away")


def agent_stints(messages: list[tuple[Event, str]]) -> dict[str, list[Event]]:
    """Each agent's state events, one per (occurred_at, event_id), in that order."""
    found: dict[str, dict[tuple[int, str], Event]] = defaultdict(dict)
    for event, _ in messages:
        if event.type == "agent.state_changed":
            found[event.agent_id or ""].setdefault((event.at, event.event_id), event)
    return {agent: [events[key] for key in sorted(events)] for agent, events in found.items()}


def day_start(now_us: int, zone: ZoneInfo, starts: time = time(0, 0)) -> int:
    """The last local ``starts`` at or before now, in µs (as in_window's ``today``)."""
    local = as_datetime(now_us).astimezone(zone)
    start = local.replace(hour=starts.hour, minute=starts.minute, second=0, microsecond=0, fold=0)
    if start > as_datetime(now_us):
        start = (local - timedelta(days=1)).replace(hour=starts.hour, minute=starts.minute, second=0,
                                                    microsecond=0, fold=0)  # fmt: skip
    return (start.astimezone(UTC) - EPOCH) // timedelta(microseconds=1)


def window_start(now_us: int, window: str, zone: ZoneInfo, starts: time = time(0, 0)) -> int:
    last = now_us // 60_000_000 * 60_000_000
    if window == "15m":
        return last - 14 * 60_000_000
    if window == "1h":
        return last - 59 * 60_000_000
    start = day_start(now_us, zone, starts)
    return -(-start // 60_000_000) * 60_000_000


def agent_time(messages: list[tuple[Event, str]], now_us: int, zone: ZoneInfo,
               targets: Targets) -> dict[tuple[str, str], list[int]]:  # fmt: skip
    """(queue, window) -> µs per timed state: every interval's overlap with [window start, now]."""
    expected: dict[tuple[str, str], list[int]] = {}
    for stints in agent_stints(messages).values():
        for index, stint in enumerate(stints):
            end = stints[index + 1].at if index + 1 < len(stints) else now_us
            if stint.state not in TIMED:
                continue
            for queue in set(stint.queues or ()):
                own_zone, own_start = targets.queue_days.get(queue, (None, None))
                day = (own_zone or zone, own_start if own_start is not None else targets.day_starts)
                for window in ("15m", "1h", "today"):
                    spent = max(0, min(end, now_us) - max(stint.at, window_start(now_us, window, *day)))
                    totals = expected.setdefault((queue, window), [0, 0, 0, 0])
                    totals[TIMED.index(stint.state or "")] += spent
    return expected


def agent_list(messages: list[tuple[Event, str]], now_us: int, zone: ZoneInfo, targets: Targets) -> dict[str, Any]:
    """agent id -> what /api/agents says of it (times in µs), from the definitions."""
    today = day_start(now_us, zone, targets.day_starts)
    found: dict[str, Any] = {}
    for agent, stints in agent_stints(messages).items():
        spent = [0, 0, 0, 0]
        for index, stint in enumerate(stints):
            end = stints[index + 1].at if index + 1 < len(stints) else now_us
            if stint.state in TIMED:
                spent[TIMED.index(stint.state or "")] += max(0, min(end, now_us) - max(stint.at, today))
        last = stints[-1]
        found[agent] = {"state": last.state, "since": last.at, "queues": sorted(set(last.queues or ())),
                        "reason": last.reason, "spent": spent, "contact": None, "handled": 0,
                        "handle_us": 0}  # fmt: skip
    distinct = {source: event for event, source in messages}
    winner: dict[tuple[str, str], Event] = {}
    for event in distinct.values():
        key = (event.contact_id or "", event.type)
        if event.type != "agent.state_changed" and (key not in winner or (event.at, event.event_id) < (
                winner[key].at, winner[key].event_id)):  # fmt: skip
            winner[key] = event
    for contact in {c for c, _ in winner}:
        offered, answered = winner.get((contact, "contact.offered")), winner.get((contact, "contact.answered"))
        abandoned, ended = winner.get((contact, "contact.abandoned")), winner.get((contact, "contact.ended"))
        if offered is None or answered is None or (abandoned is not None and abandoned.at < answered.at):
            continue
        entry = found.setdefault(answered.agent_id or "", {"state": None, "since": None, "queues": [], "reason": None,
                                                           "spent": [0, 0, 0, 0], "contact": None, "handled": 0,
                                                           "handle_us": 0})  # fmt: skip
        if ended is None:
            mine = (answered.at, contact)
            if entry["contact"] is None or mine > (entry["contact"][3], entry["contact"][0]):
                entry["contact"] = (contact, offered.queue, offered.channel, answered.at)
        elif today <= ended.at:
            seconds = (ended.talk_seconds or 0) + (ended.hold_seconds or 0) + (ended.acw_seconds or 0)
            entry["handled"] += 1
            entry["handle_us"] += round(seconds * 1_000_000)
    return found
