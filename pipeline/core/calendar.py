"""Business hours and holidays of a queue (the targets file's ``hours``, ``holidays``,
``closed_dates``; docs/metrics.md "Business hours and holidays").

Pure: whether a queue is open at an instant, in the queue's own zone. Public holidays come from
the ``holidays`` package (every country it knows, e.g. ``JP``, ``KR``, ``US-CA``), the center's
own closed dates from the file. A contact offered while its queue is closed is counted apart
(``offered_out_of_hours``) and leaves service level, ASA and abandonment, unless the queue counts
such contacts (``out_of_hours: counted``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Ranges = tuple[tuple[int, int], ...]  # [start, end) in seconds after local midnight


class CalendarError(ValueError):
    """A business-hours setting is wrong: the message says which and why."""


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    hours: tuple[Ranges, ...]  # Monday first
    country: str | None = None  # ISO 3166 code of the public holidays, e.g. "JP"
    subdivision: str | None = None
    closed: frozenset[date] = frozenset()
    counted: bool = False  # contacts offered while closed counted like any other

    def is_open(self, at_us: int) -> bool:
        local = (EPOCH + timedelta(microseconds=at_us)).astimezone(self.zone)
        day = local.date()
        if self._closed_day(day):
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second
        return any(start <= second < end for start, end in self.hours[day.weekday()])

    def open_us(self, start_us: int, end_us: int) -> int:
        """Business time: the microseconds of [start_us, end_us) while the queue is open (exactly
        :meth:`is_open` summed over the span). A local day at a time; a day whose UTC offset
        changes is walked minute by minute (ranges and offsets are whole minutes)."""
        total, at = 0, start_us
        while at < end_us:
            day = (EPOCH + timedelta(microseconds=at)).astimezone(self.zone).date()
            following = min(end_us, _next_midnight_us(self.zone, day, at))
            if not self._closed_day(day):
                total += self._open_in_day(day, at, following)
            at = following
        return total

    def _closed_day(self, day: date) -> bool:
        return day in self.closed or bool(self.country and day in public_holidays(self.country, self.subdivision))

    def _open_in_day(self, day: date, start_us: int, end_us: int) -> int:
        """Open time of [start_us, end_us), all of it in the local ``day``."""
        offset = _offset_us(self.zone, start_us)
        if offset != _offset_us(self.zone, end_us - 1):
            return sum(min(minute + MINUTE_US, end_us) - max(minute, start_us)
                       for minute in range(start_us - start_us % MINUTE_US, end_us, MINUTE_US)
                       if self.is_open(max(minute, start_us)))  # fmt: skip
        midnight = (datetime.combine(day, datetime.min.time(), UTC) - EPOCH) // timedelta(microseconds=1)
        wall_start, wall_end = start_us + offset - midnight, end_us + offset - midnight
        return sum(max(0, min(wall_end, end * SECOND_US) - max(wall_start, start * SECOND_US))
                   for start, end in self.hours[day.weekday()])  # fmt: skip


def _offset_us(zone: ZoneInfo, at_us: int) -> int:
    offset = (EPOCH + timedelta(microseconds=at_us)).astimezone(zone).utcoffset()
    return offset // timedelta(microseconds=1) if offset is not None else 0


def _next_midnight_us(zone: ZoneInfo, day: date, after_us: int) -> int:
    """The first instant of the local day after ``day`` (its midnight; the later one when it is
    repeated, or the end of the gap when it is skipped), later than ``after_us``."""
    following = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
    for fold in (0, 1):
        found = (following.replace(fold=fold) - EPOCH) // timedelta(microseconds=1)
        if found > after_us:
            return found
    return after_us + MINUTE_US  # (not reached: a local day lasts at least a minute)


@functools.lru_cache(maxsize=64)
def public_holidays(country: str, subdivision: str | None) -> Any:
    """The ``holidays`` package's calendar of a country (years are filled in as they are asked)."""
    return holidays.country_holidays(country, subdiv=subdivision)


def calendar_of(entry: dict[str, Any], zone: ZoneInfo) -> Calendar:
    """A queue's calendar from its targets-file entry (``hours``, ``holidays``, ``closed_dates``,
    ``out_of_hours``); raises :class:`CalendarError` saying what is wrong."""
    hours = entry.get("hours")
    week: tuple[Ranges, ...]
    if hours is None:
        week = tuple(((0, 86400),) for _ in WEEKDAYS)  # open all week: only holidays and closed dates close
    elif not isinstance(hours, dict) or not set(hours) <= set(WEEKDAYS):
        raise CalendarError(f"hours: expected an object of {', '.join(WEEKDAYS)} (a day left out is closed)")
    else:
        week = tuple(_ranges(hours.get(name), name) for name in WEEKDAYS)
    country, subdivision = _country(entry.get("holidays"))
    closed = frozenset(_date(text) for text in entry.get("closed_dates") or [])
    mode = entry.get("out_of_hours", "apart")
    if mode not in ("apart", "counted"):
        raise CalendarError(f"out_of_hours: expected apart or counted, got {mode!r}")
    return Calendar(zone, week, country, subdivision, closed, mode == "counted")


def _ranges(value: Any, day: str) -> Ranges:
    texts = [value] if isinstance(value, str) else value or []
    found = []
    for text in texts:
        matched = RANGE.match(str(text))
        if matched is None:
            raise CalendarError(f'hours.{day}: {text!r} is not a range HH:MM-HH:MM (e.g. "09:00-18:00")')
        start = int(matched.group(1)) * 3600 + int(matched.group(2)) * 60
        end = int(matched.group(3)) * 3600 + int(matched.group(4)) * 60
        if not start < end <= 86400:
            raise CalendarError(f"hours.{day}: {text!r} ends before it starts (a night shift: two days' ranges)")
        found.append((start, end))
    found.sort()
    for (_, end), (start, _) in zip(found, found[1:], strict=False):
        if start < end:
            raise CalendarError(f"hours.{day}: ranges overlap ({', '.join(map(str, texts))})")
    return tuple(found)


def _country(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    country, _, subdivision = str(value).partition("-")
    try:
        public_holidays(country, subdivision or None)
    except NotImplementedError:
        raise CalendarError(f"holidays: the holidays package knows no country {value!r} (e.g. JP, KR, US-CA)") from None
    return country, subdivision or None


def _date(text: Any) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise CalendarError(f"closed_dates: {text!r} is not a date YYYY-MM-DD") from None
