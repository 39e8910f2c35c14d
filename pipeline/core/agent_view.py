"""What the board shows of agents (issue 22): time in state per queue and window, occupancy and
utilisation, and the live agent list. Pure: the board and ``now`` in, numbers out.

Time in a window = the closed intervals' microseconds in the window's minutes (the passes' sums)
+ each open interval's part of [window start, now] (METRICS.md, "Time in state").

- occupancy (占有率) = on_contact + after_contact_work ÷ (that + available)
- utilisation (稼働率) = on_contact + after_contact_work + available ÷ every timed state
  (``away`` included; ``offline`` is not timed)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Set
from typing import Any

from pipeline.core.agent_time import SLOT, TIMED, open_time, overlap
from pipeline.core.board import AgentPartial, Board
from pipeline.core.counts import MICROS
from pipeline.core.windows import MINUTE_US, WINDOWS, Day, window_minutes

AVAILABLE, ON_CONTACT, AFTER_CONTACT_WORK, AWAY = (SLOT[state] for state in TIMED)


def occupancy(seconds: list[int] | tuple[int, ...]) -> float | None:
    working = seconds[ON_CONTACT] + seconds[AFTER_CONTACT_WORK]
    return working / (working + seconds[AVAILABLE]) if working + seconds[AVAILABLE] else None


def utilisation(seconds: list[int] | tuple[int, ...]) -> float | None:
    staffed = seconds[ON_CONTACT] + seconds[AFTER_CONTACT_WORK] + seconds[AVAILABLE]
    return staffed / sum(seconds) if sum(seconds) else None


def queue_time(board: Board, now_us: int, day_of: Callable[[str], Day]) -> Iterator[tuple[str, str, list[int]]]:
    """(queue, window, µs per timed state) for every queue with agent time: ``today`` from the
    closed intervals' sums of the queue's day, ``15m`` and ``1h`` from the recent closed intervals'
    overlap with the window; each with the open intervals' part up to now."""
    for queue in sorted(board.agent_days.keys() | board.timing.keys() | board.recent.keys()):
        day = day_of(queue)
        ranges = window_minutes(now_us, day)
        open_states = board.timing.get(queue, {})  # timed state -> since of each agent in it, sorted
        hour, quarter = ranges["1h"][0] * MINUTE_US, ranges["15m"][0] * MINUTE_US
        in_hour, in_quarter = board.recent_time(queue, hour, quarter, now_us)
        closed = {"1h": in_hour, "15m": in_quarter}
        for window in WINDOWS:
            start = ranges[window][0] * MINUTE_US
            if window == "today":
                total = list(board.agent_days.get(queue, {}).get(day.start_us(now_us), [0] * len(TIMED)))
            else:
                total = closed[window]
            for state, since in open_states.items():
                total[SLOT[state]] += open_time(since, start, now_us)
            yield queue, window, total


def agent_list(board: Board, now_us: int, day: Day, queues: Set[str] = frozenset()) -> list[dict[str, Any]]:
    """``GET /api/agents``: every agent the board knows, by id (docs/wallboard-api.md); with
    ``queues``, only those whose latest state lists one of them (as the agents' page filters)."""
    today = day.start_us(now_us)
    found = []
    for agent_id in sorted(board.agent_states.keys() | board.agent_work.keys()):
        states = board.agent_states.get(agent_id, {})
        latest = _latest(states)
        if queues and (latest is None or queues.isdisjoint(latest.queues)):
            continue
        work = board.agent_work.get(agent_id, {}).values()
        on = sorted(contact for each in work for contact in each.contacts)  # ties: the first in order
        current = max(on, key=lambda contact: (contact[3], contact[0]), default=None)
        handled = handle_us = 0
        for worked in work:
            for start, count, us in worked.days:
                if start == today:
                    handled += count
                    handle_us += us
        seconds = [0] * len(TIMED)
        for each in states.values():
            for start, spent in each.days:
                if start == today:
                    seconds = [a + b for a, b in zip(seconds, spent, strict=True)]
        if latest is not None and latest.state in SLOT:
            seconds[SLOT[latest.state]] += overlap(latest.since, today, now_us)
        found.append({
            "agent_id": agent_id,
            "state": latest.state if latest is not None else None,
            "since": latest.since / MICROS if latest is not None else None,
            "queues": list(latest.queues) if latest is not None else [],
            "reason": latest.reason if latest is not None else None,
            "contact": None if current is None else {
                "contact_id": current[0], "queue": current[1], "channel": current[2],
                "seconds": max(0, now_us - current[3]) / MICROS,
            },
            "today": {
                "handled": handled,
                "aht_seconds": handle_us / MICROS / handled if handled else None,
                "occupancy": occupancy(seconds),
            },
        })  # fmt: skip
    return found


def agents_offline(board: Board) -> int:
    """How many agents the board knows are offline now (the agents' page's count)."""
    latest = (_latest(states) for states in board.agent_states.values())
    return sum(1 for each in latest if each is not None and each.state == "offline")


def _latest(states: Mapping[int, AgentPartial]) -> AgentPartial | None:
    """An agent's latest state: the latest of its partitions' (a moved agent keeps one per source)."""
    return max(states.values(), key=lambda each: each.since, default=None)
