"""Windows of whole UTC minutes ending at ``floor(now)`` (METRICS.md, "Dimensions and time").

minute index m = floor(t / 60 s); a contribution at t belongs to minute m.

                    floor(now) - 14          floor(now)
15m:    ... ─────────[  m  m  m ...  m  m  m ]───── later minutes: in no window yet
1h:     ... [ 60 minutes ending at floor(now) ]
today:  [ from the queue's last day start (local midnight of CCPULSE_TIMEZONE unless the targets
          file gives the queue a zone and a day start, e.g. Asia/Tokyo at 06:00) to floor(now) ]

A day start at a local time the zone skips (a daylight-saving gap) is the moment the clock would
have shown it (the offset before the change); one it repeats is its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MINUTE_US = 60_000_000
WINDOWS = ("15m", "1h", "today")


def minute_of(at_us: int) -> int:
    return at_us // MINUTE_US


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Day:
    """Where a queue's day begins: a zone and a local time of day."""

    zone: ZoneInfo
    starts: time = time(0, 0)

    def start_us(self, now_us: int) -> int:
        """The latest start of a day at or before ``now``."""
        local_date = (EPOCH + timedelta(microseconds=now_us)).astimezone(self.zone).date()
        for day in (local_date, local_date - timedelta(days=1)):
            at_us = self._at(day)
            if at_us <= now_us:
                return at_us
        return self._at(local_date - timedelta(days=2))  # a day start in a 24-hour gap (never seen)

    def _at(self, day: date) -> int:
        moment = datetime.combine(day, self.starts, tzinfo=self.zone)
        return (moment.astimezone(UTC) - EPOCH) // timedelta(microseconds=1)


UTC_DAY = Day(ZoneInfo("UTC"))


def window_minutes(now_us: int, day: Day) -> dict[str, tuple[int, int]]:
    """First and last minute index (both included) of each window at ``now``."""
    last = minute_of(now_us)
    first_today = -(-day.start_us(now_us) // MINUTE_US)  # the first whole minute at or after the day start
    return {"15m": (last - 14, last), "1h": (last - 59, last), "today": (first_today, last)}
