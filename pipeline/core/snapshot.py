"""The board as one JSON document for wallboards (``/api/snapshot``): per queue and channel the
live state, the KPIs of the wallboard's windows, and a status against the targets.

The numbers are the gauges' own (same board, same formulas, same *now*): a board built on this
document shows what Prometheus shows. ``status`` is ``on_target``, ``near`` (within
``NEAR_POINTS`` below the target) or ``breached``; ``null`` when there is no service level yet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.core.board import Board
from pipeline.core.metrics import (
    WRITTEN_CHANNELS,
    abandon_ratio,
    aht_seconds,
    answer_ratio,
    answered_in_sl_ratio,
    art_seconds,
    asa_seconds,
    backlog,
    csat_ratio,
    fcr_ratio,
    past_promise,
    service_level,
)
from pipeline.core.targets import Targets
from pipeline.core.windows import Day

NEAR_POINTS = 0.05
AGENT_STATES = ("available", "on_contact", "after_contact_work", "away")


def status(level: float | None, target: float) -> str | None:
    if level is None:
        return None
    if level >= target:
        return "on_target"
    return "near" if level >= target - NEAR_POINTS else "breached"


def day_document(day: Day, now_us: int, own: bool) -> dict[str, Any]:
    """Where the queue's ``today`` began: its zone, local start and the instant (Unix seconds);
    ``shown``, for the tile, only when the queue's day is not the board's (``06:00 Asia/Tokyo``)."""
    starts = day.starts.strftime("%H:%M")
    return {"zone": day.zone.key, "starts": starts, "since": day.start_us(now_us) / 1_000_000 if now_us else None,
            "shown": f"{starts} {day.zone.key}" if own else ""}  # fmt: skip


def written_backlog(channel: str, offered: list[int], now_us: int, threshold_us: int,
                    waited: Callable[[int, int], int]) -> dict[str, Any]:  # fmt: skip
    """``backlog`` (waiting by age) and ``past_promise`` of a written channel (null for the others)."""
    if channel not in WRITTEN_CHANNELS:
        return {"backlog": None, "past_promise": None}
    return {"backlog": backlog(now_us, offered), "past_promise": past_promise(now_us, offered, threshold_us, waited)}


def snapshot(board: Board, now_us: int, zone: ZoneInfo, targets: Targets) -> dict[str, Any]:
    windows: dict[tuple[str, str], dict[str, Any]] = {}
    for queue, channel, window, counts in board.window_counts(now_us, lambda queue: targets.day_for(queue, zone)):
        windows.setdefault((queue, channel), {})[window] = counts
    live = {(queue, channel): (count, oldest) for queue, channel, count, oldest in board.waiting(now_us)}
    offered = {(queue, channel): since for queue, channel, since in board.waiting_since(now_us)}
    agents: dict[str, dict[str, int]] = {}
    for queue, state, count in board.agents_by_state():
        agents.setdefault(queue, dict.fromkeys(AGENT_STATES, 0))[state] = count
    tiles = []
    board_day = Day(zone, targets.day_starts)  # the board's clock: CCPULSE_TIMEZONE, the file's day start
    for queue, channel in sorted(set(windows) | set(live)):
        target = targets.for_queue(queue, channel)
        day = targets.day_for(queue, zone)
        by_window = windows.get((queue, channel), {})
        today, quarter = by_window.get("today"), by_window.get("15m")
        waiting, oldest_us = live.get((queue, channel), (0, None))
        sl_today = service_level(today, target) if today else None
        sl_15m = service_level(quarter, target) if quarter else None
        tiles.append({
            "queue": queue,
            "channel": channel,
            "waiting": waiting,
            "oldest_wait_seconds": oldest_us / 1_000_000 if oldest_us is not None else None,
            "agents": agents.get(queue, dict.fromkeys(AGENT_STATES, 0)),
            "service_level": {"today": sl_today, "15m": sl_15m},
            "status": {"today": status(sl_today, target.target_ratio), "15m": status(sl_15m, target.target_ratio)},
            "answer_ratio": answer_ratio(today) if today else None,
            "answered_in_sl_ratio": answered_in_sl_ratio(today) if today else None,
            "asa_seconds": asa_seconds(today) if today else None,
            "abandon_ratio": abandon_ratio(today) if today else None,
            "aht_seconds": aht_seconds(today) if today else None,
            "csat_ratio": csat_ratio(today) if today else None,
            "fcr_ratio": fcr_ratio(today) if today else None,
            "art_seconds": art_seconds(today) if today else None,
            "target": {"service_level": target.target_ratio, "threshold_seconds": target.threshold_seconds},
            "day": day_document(day, now_us, own=day != board_day),
            **written_backlog(channel, offered.get((queue, channel), []), now_us, target.threshold_us,
                              functools.partial(targets.waited_us, queue, channel)),
        })  # fmt: skip
    return {"now": now_us / 1_000_000 if now_us else None, "queues": tiles}
