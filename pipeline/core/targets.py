"""Service-level targets: defaults from METRICS.md, overridable per channel and per queue+channel.

A targets file (``CCPULSE_TARGETS``) is JSON or TOML-like JSON:

    {"channels": {"voice": {"sl_threshold_seconds": 30, "sl_target": 0.85}},
     "queues": {"vip": {"voice": {"sl_threshold_seconds": 10}},
                "tokyo": {"timezone": "Asia/Tokyo", "day_starts": "06:00"}},
     "day_starts": "00:00", "short_abandon_seconds": 5, "fcr_window_days": 7}

A queue+channel entry wins over the channel entry, which wins over the default. A queue's
``timezone`` (an IANA name) and ``day_starts`` (local ``HH:MM``) say where its ``today`` begins;
without them, ``CCPULSE_TIMEZONE`` and the file's own ``day_starts`` (default midnight).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.core.calendar import Calendar, CalendarError, calendar_of
from pipeline.core.windows import Day

DEFAULT_CHANNEL_TARGETS: dict[str, tuple[float, float]] = {
    "voice": (20, 0.80),
    "chat": (30, 0.80),
    "sms": (300, 0.80),
    "social": (3600, 0.80),
    "email": (86400, 0.90),
    "in_person": (300, 0.80),
}


class TargetsError(ValueError):
    """The targets file is wrong; the message says where."""


ABANDON_RULES = ("short_excluded", "all", "excluded")


@dataclass(frozen=True)
class Target:
    """A queue and channel's service level: its threshold and target, and how abandons count
    (``sl_abandons``: short abandons left out — METRICS.md's default —, all abandons in the
    denominator, or abandons left out; ``sl_abandons_in_threshold_met``: an abandon within the
    threshold counts as met; ``sl_business_hours``: the wait held against the threshold is the time
    the queue was open — "a reply within 24 business hours" —, not the time that passed)."""

    threshold_seconds: float
    target_ratio: float
    abandons: str = "short_excluded"
    abandons_met: bool = False
    business_hours: bool = False

    @property
    def threshold_us(self) -> int:
        return round(self.threshold_seconds * 1_000_000)


@dataclass(frozen=True)
class Targets:
    channels: dict[str, Target] = field(
        default_factory=lambda: {ch: Target(t, r) for ch, (t, r) in DEFAULT_CHANNEL_TARGETS.items()}
    )
    queues: dict[tuple[str, str], Target] = field(default_factory=dict)  # (queue, channel)
    short_abandon_seconds: float = 5.0
    fcr_window_days: float = 7.0
    day_starts: time = time(0, 0)
    queue_days: dict[str, tuple[ZoneInfo | None, time | None]] = field(default_factory=dict)
    calendars: dict[str, Calendar] = field(default_factory=dict)  # queues with business hours

    def calendar_for(self, queue: str) -> Calendar | None:
        return self.calendars.get(queue)

    def for_queue(self, queue: str, channel: str) -> Target:
        return self.queues.get((queue, channel)) or self.channels[channel]

    def waited_us(self, queue: str, channel: str, start_us: int, end_us: int) -> int:
        """The wait from ``start_us`` to ``end_us`` as the queue and channel's threshold reads it: the
        time that passed, or with ``sl_business_hours`` the time the queue was open (a queue without
        hours is always open)."""
        calendar = self.calendars.get(queue)
        if calendar is None or not self.for_queue(queue, channel).business_hours:
            return max(0, end_us - start_us)
        return calendar.open_us(start_us, end_us)

    def agent_day(self, zone: ZoneInfo) -> Day:
        """Where an agent's own ``today`` begins (the agent list): ``zone`` (CCPULSE_TIMEZONE) and the
        file's ``day_starts`` — an agent may serve queues of several zones."""
        return Day(zone, self.day_starts)

    def day_for(self, queue: str, zone: ZoneInfo) -> Day:
        """Where ``queue``'s day begins: its own zone and start, else ``zone`` and the file's start."""
        own_zone, own_start = self.queue_days.get(queue, (None, None))
        return Day(own_zone or zone, own_start if own_start is not None else self.day_starts)

    @property
    def short_abandon_us(self) -> int:
        return round(self.short_abandon_seconds * 1_000_000)

    @property
    def fcr_window_us(self) -> int:
        return round(self.fcr_window_days * 86_400 * 1_000_000)

    @classmethod
    def load(cls, path: Path | None, zone: ZoneInfo | None = None) -> Targets:
        """The targets file; ``zone`` (CCPULSE_TIMEZONE) is where queues without a ``timezone`` keep
        their business hours."""
        if path is None:
            return cls()
        try:
            text = path.read_text()
            document = json.loads(text)
        except (OSError, ValueError) as problem:
            raise TargetsError(f"{path}: {problem}") from None
        return cls.from_document(document, str(path), text, zone)

    @classmethod
    def from_document(cls, document: Any, where: str = "targets", text: str = "",
                      zone: ZoneInfo | None = None) -> Targets:  # fmt: skip
        if not isinstance(document, dict):
            raise TargetsError(f"{where}: expected a JSON object")
        defaults = cls()
        short = _number(document.get("short_abandon_seconds", 5), f"{where}: short_abandon_seconds", 0, 3600)
        channels = dict(defaults.channels)
        for channel, entry in (document.get("channels") or {}).items():
            if channel not in channels:
                raise TargetsError(f"{where}: channels.{channel}: not a channel ({', '.join(channels)})")
            channels[channel] = _target(entry, channels[channel], f"{where}: channels.{channel}", short)
        queues: dict[tuple[str, str], Target] = {}
        days: dict[str, tuple[ZoneInfo | None, time | None]] = {}
        calendars: dict[str, Calendar] = {}
        for queue, per_channel in (document.get("queues") or {}).items():
            for channel, entry in (per_channel or {}).items():
                if channel in DAY_KEYS | CALENDAR_KEYS:
                    continue
                if channel not in channels:
                    raise TargetsError(f"{where}: queues.{queue}.{channel}: not a channel")
                queues[(queue, channel)] = _target(
                    entry, channels[channel], f"{where}: queues.{queue}.{channel}", short
                )
            if DAY_KEYS & (per_channel or {}).keys():
                days[queue] = _day(per_channel, f"queues.{queue}", where, text)
            if CALENDAR_KEYS & (per_channel or {}).keys():
                own_zone = days.get(queue, (None, None))[0]
                calendars[queue] = _calendar(per_channel, own_zone or zone or ZoneInfo("UTC"), queue, where, text)
        window = _number(document.get("fcr_window_days", 7), f"{where}: fcr_window_days", 0, 365)
        starts = _day(document, "", where, text)[1] or time(0, 0)
        return cls(channels, queues, short, window, starts, days, calendars)


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise TargetsError(f"{where}: expected a number from {low} to {high}, got {value!r}")
    return float(value)


def _target(entry: Any, base: Target, where: str, short_abandon_seconds: float = 5.0) -> Target:
    if not isinstance(entry, dict):
        raise TargetsError(f"{where}: expected an object with sl_threshold_seconds and/or sl_target")
    threshold = _number(entry.get("sl_threshold_seconds", base.threshold_seconds), where, 0, 30 * 86400)
    ratio = _number(entry.get("sl_target", base.target_ratio), where, 0, 1)
    abandons = entry.get("sl_abandons", base.abandons)
    if abandons not in ABANDON_RULES:
        raise TargetsError(f"{where}: sl_abandons: expected one of {', '.join(ABANDON_RULES)}, got {abandons!r}")
    met = entry.get("sl_abandons_in_threshold_met", base.abandons_met)
    if not isinstance(met, bool):
        raise TargetsError(f"{where}: sl_abandons_in_threshold_met: expected true or false, got {met!r}")
    if met and abandons == "excluded":
        raise TargetsError(f"{where}: sl_abandons_in_threshold_met needs abandons counted (sl_abandons "
                           "short_excluded or all)")  # fmt: skip
    if met and abandons == "all" and threshold < short_abandon_seconds:
        raise TargetsError(f"{where}: with sl_abandons all and sl_abandons_in_threshold_met, the threshold "
                           f"({threshold:g} s) must be at least short_abandon_seconds "
                           f"({short_abandon_seconds:g} s)")  # fmt: skip
    business = entry.get("sl_business_hours", base.business_hours)
    if not isinstance(business, bool):
        raise TargetsError(f"{where}: sl_business_hours: expected true or false, got {business!r}")
    return Target(threshold, ratio, str(abandons), met, business)


DAY_KEYS = {"timezone", "day_starts"}
CALENDAR_KEYS = {"hours", "holidays", "closed_dates", "out_of_hours"}


def _calendar(entry: dict[str, Any], zone: ZoneInfo, queue: str, where: str, text: str) -> Calendar:
    try:
        return calendar_of(entry, zone)
    except CalendarError as problem:
        key = str(problem).split(":", 1)[0].split(".", 1)[0]
        raise TargetsError(f"{_line_of_key(where, text, queue, key)}: queues.{queue}.{problem}") from None


def _line_of_key(where: str, text: str, queue: str, key: str) -> str:
    """``where`` with the line of ``key`` within ``queue``'s entry (the first after its name)."""
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if json.dumps(queue) in line), None)
    if start is None:
        return where
    found = next((n for n in range(start, len(lines)) if json.dumps(key) in lines[n]), None)
    return f"{where}:{found + 1}" if found is not None else where


CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _day(entry: dict[str, Any], path: str, where: str, text: str) -> tuple[ZoneInfo | None, time | None]:
    """An entry's ``timezone`` and ``day_starts``; an error names the line of the file."""
    zone, starts = entry.get("timezone"), entry.get("day_starts")
    prefix = f"{path}." if path else ""
    found_zone = None
    if zone is not None:
        try:
            found_zone = ZoneInfo(str(zone)) if isinstance(zone, str) and zone else None
        except (ZoneInfoNotFoundError, ValueError):
            found_zone = None
        if found_zone is None:
            raise TargetsError(f"{_at(where, text, zone)}: {prefix}timezone: {zone!r} is not an IANA time zone "
                               "(e.g. Asia/Tokyo, Asia/Seoul, Europe/Berlin, UTC)")  # fmt: skip
    found_start = None
    if starts is not None:
        matched = CLOCK.match(str(starts)) if isinstance(starts, str) else None
        if matched is None:
            raise TargetsError(f"{_at(where, text, starts)}: {prefix}day_starts: {starts!r} is not a local time "
                               "HH:MM (e.g. \"06:00\")")  # fmt: skip
        found_start = time(int(matched.group(1)), int(matched.group(2)))
    return found_zone, found_start


def _at(where: str, text: str, value: object) -> str:
    """``where`` with the line of the file where ``value`` is written (``targets.json:12``)."""
    needle = json.dumps(value)
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return f"{where}:{number}"
    return where
