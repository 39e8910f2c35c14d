"""Time in state: how long each agent spent in each state, per queue and minute (issue 22).

Pure: no I/O. An agent's state lasts from its event's ``occurred_at`` until the agent's next state
event (by ``occurred_at``, ties by ``event_id``) or until now (METRICS.md, "Time in state"). The
agent keeps its state events in that order (:class:`Stint`, ``AgentRecord.history``), so the set
of events decides the intervals, whatever order they came in; an event seen before changes nothing.

    history:   s0 ─────────── s1 ──── s2 ─────────── s3 ──────▶ now
    intervals: [s0.at, s1.at) [s1.at, s2.at) [s2.at, s3.at)   open: [s3.at, now)

A *closed* interval adds its microseconds to the days it covers (:func:`day_pieces`), for each
queue its starting event lists and for the agent; the *open* one is live: the board adds
``now - max(since, window start)`` at read time. ``offline`` is not timed.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from msgspec import Struct

from pipeline.core.windows import Day

TIMED = ("available", "on_contact", "after_contact_work", "away")  # offline is not timed
SLOT = {state: slot for slot, state in enumerate(TIMED)}
HOUR_US = 3600 * 1_000_000
T = TypeVar("T")


class Stint(Struct, array_like=True, frozen=True, gc=False):
    """One ``agent.state_changed``: the state from ``at`` until the agent's next stint.

    An agent's history holds every stint of the contact retention (26 hours by default; the
    simulator sends ~0.4 per input event), so a stint names its state, queues and reason through
    :func:`shared` (one object per distinct value), and the collector does not track it (it holds
    no container that could make a cycle)."""

    at: int
    event_id: str
    state: str
    queues: tuple[str, ...]  # sorted, each once
    reason: str | None = None


SHARED_AT_MOST = 10_000  # distinct states, reasons and queue lists kept shared; more: start again
_shared: dict[object, object] = {}


def shared(value: T) -> T:
    """The one object kept for ``value`` (a state, a reason, a sorted tuple of queues): stints that
    name the same value hold the same object, not a copy each (decoded strings are new objects)."""
    found = _shared.get(value)
    if found is None:
        if len(_shared) >= SHARED_AT_MOST:
            _shared.clear()  # a producer that names ever new values: their copies are only not shared
        found = _shared[value] = value
    return found  # type: ignore[return-value]


def shared_stint(stint: Stint) -> Stint:
    """``stint`` naming its values through :func:`shared` (one decoded from the changelog)."""
    return Stint(stint.at, stint.event_id, shared(stint.state), shared(stint.queues), shared(stint.reason))


Interval = tuple[int, int, str, tuple[str, ...]]  # (start, end, state, queues): closed, timed


def stint_at(stint: Stint) -> int:
    return stint.at


def stint_order(stint: Stint) -> tuple[int, str]:
    """The order of an agent's stints: by ``at``, then ``event_id``."""
    return stint.at, stint.event_id


def insert(history: list[Stint], stint: Stint) -> bool:
    """Put ``stint`` in its place (by ``at``, then ``event_id``); False when that event is known."""
    return not insert_at(history, stint)[2]


def insert_at(history: list[Stint], stint: Stint) -> tuple[int, int, bool]:
    """:func:`insert`, and the time whose states that may change — from the stint before it to the
    one after it (to ``stint`` itself at either end) — and whether the event was known already
    (then: the time its own presence decides)."""
    position = bisect_left(history, stint_order(stint), key=stint_order)
    known = position < len(history) and stint_order(history[position]) == stint_order(stint)
    following = position + 1 if known else position
    start = history[position - 1].at if position else stint.at
    end = history[following].at if following < len(history) else stint.at
    if not known:
        history.insert(position, stint)
    return min(start, stint.at), max(end, stint.at), known


def intervals(history: Sequence[Stint]) -> Iterator[Interval]:
    """The closed intervals of timed states with a length (an instant's state lasts no time)."""
    for stint, following in zip(history, history[1:]):  # noqa: B905 - one shorter by design
        if stint.state in SLOT and following.at > stint.at:
            yield stint.at, following.at, stint.state, stint.queues


def changed_from(before: Sequence[Stint], after: Sequence[Stint]) -> int:
    """The first position where ``after`` (``before`` with stints inserted, the same objects) differs:
    the stints before it are ``before``'s, in place (a binary search on identity)."""
    low, high = 0, min(len(before), len(after))
    while low < high:
        middle = (low + high) // 2
        if before[middle] is after[middle]:
            low = middle + 1
        else:
            high = middle
    return low


def changes(before: Sequence[Stint], after: Sequence[Stint]) -> tuple[set[Interval], set[Interval]]:
    """The closed intervals ``after`` no longer has, and the ones it has anew."""
    start = max(0, changed_from(before, after) - 1)
    was, now = set(intervals(before[start:])), set(intervals(after[start:]))
    return was - now, now - was


def next_day_start(day: Day, at: int) -> int:
    """The first start of a day after ``at`` (days last 23 to 25 hours)."""
    probe = at + 23 * HOUR_US
    while day.start_us(probe) <= at:
        probe += HOUR_US
    return day.start_us(probe)


def day_span(day: Day, at: int) -> tuple[int, int]:
    """The start of the day ``at`` is in, and of the next."""
    first = day.start_us(at)
    return first, next_day_start(day, first)


def day_pieces(start: int, end: int, day: Day,
               span: Callable[[Day, int], tuple[int, int]] = day_span) -> Iterator[tuple[int, int]]:  # fmt: skip
    """(day start, microseconds) of [start, end) in each of ``day``'s days it covers (``span``: where
    a day begins and ends, e.g. a cached :func:`day_span`)."""
    while start < end:
        first, following = span(day, start)
        boundary = min(end, following)
        yield first, boundary - start
        start = boundary


def overlap(since: int, window_start: int, now: int) -> int:
    """The open interval's part of [window_start, now]."""
    return max(0, now - max(since, window_start))


def open_time(since: Sequence[int], window_start: int, now: int) -> int:
    """Σ :func:`overlap` of open intervals begun at each of ``since`` (sorted): those begun at or
    before the window's start count from it, those after it from their start, those from ``now``
    on nothing. Two binary searches and one sum, so a scrape costs per state, not per agent."""
    if now <= window_start:
        return 0
    before = bisect_right(since, window_start)
    within = bisect_left(since, now, lo=before)
    return before * (now - window_start) + (within - before) * now - sum(since[before:within])
