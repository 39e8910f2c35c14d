"""Windows of whole UTC minutes ending at ``floor(now)`` (METRICS.md, "Dimensions and time").

minute index m = floor(t / 60 s); a contribution at t belongs to minute m.

                    floor(now) - 14          floor(now)
15m:    ... ─────────[  m  m  m ...  m  m  m ]───── later minutes: in no window yet
1h:     ... [ 60 minutes ending at floor(now) ]
today:  [ from the last local midnight of now (CCPULSE_TIMEZONE) to floor(now) ]
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTE_US = 60_000_000
WINDOWS = ("15m", "1h", "today")


def minute_of(at_us: int) -> int:
    return at_us // MINUTE_US


def window_minutes(now_us: int, zone: ZoneInfo) -> dict[str, tuple[int, int]]:
    """First and last minute index (both included) of each window at ``now``."""
    last = minute_of(now_us)
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)
    local = moment.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    midnight_us = (midnight - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    first_today = -(-midnight_us // MINUTE_US)  # the first whole minute at or after midnight
    return {"15m": (last - 14, last), "1h": (last - 59, last), "today": (first_today, last)}
