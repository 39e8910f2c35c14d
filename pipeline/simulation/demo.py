"""Where and when ``ccpulse up`` places its simulated center, so the board is busy at any hour.

The simulated center's day follows its local clock (voice, chat and the branch open from 07:00 or
08:00 local). A center in UTC shows almost nothing at 06:00 UTC, so by default ``up`` puts the
center in a zone where it is early afternoon now (Asia/Tokyo from 05:00 to 05:59 UTC, Africa/Lagos
from 13:00 to 13:59 UTC, …) and the worker's "today" in the same zone, then sends the
center's day so far at full speed before going on in real time. A zone the user set
(``CCPULSE_TIMEZONE``) is kept: the day so far is then whatever that zone's clock says.

Pure: ``now`` is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

AFTERNOON_HOUR = 14  # the local hour the default center is placed at: 7 open hours so far today

# One zone per whole-hour offset, without daylight saving today, so the offset holds all day.
ZONES_BY_OFFSET: dict[int, str] = {
    -11: "Pacific/Pago_Pago", -10: "Pacific/Honolulu", -9: "Pacific/Gambier", -8: "Pacific/Pitcairn",
    -7: "America/Phoenix", -6: "America/Guatemala", -5: "America/Bogota", -4: "America/La_Paz",
    -3: "America/Sao_Paulo", -2: "America/Noronha", -1: "Atlantic/Cape_Verde", 0: "UTC",
    1: "Africa/Lagos", 2: "Africa/Johannesburg", 3: "Asia/Riyadh", 4: "Asia/Dubai", 5: "Asia/Karachi",
    6: "Asia/Dhaka", 7: "Asia/Bangkok", 8: "Asia/Singapore", 9: "Asia/Tokyo", 10: "Australia/Brisbane",
    11: "Pacific/Guadalcanal", 12: "Pacific/Tarawa",
}  # fmt: skip


@dataclass(frozen=True)
class DemoCenter:
    zone: str  # IANA name: the simulated center's clock and the worker's "today"
    utc_offset_hours: float  # the zone's offset now (the simulator's day curve and shifts)
    day_start: datetime  # the center's last local midnight, in UTC: where the simulated day begins

    def describe(self, now: datetime) -> str:
        local = now.astimezone(ZoneInfo(self.zone))
        return f"{self.zone}, {local:%H:%M} there"


def demo_center(now: datetime, zone: str | None = None) -> DemoCenter:
    """The center for ``ccpulse up`` at ``now`` (aware): in ``zone`` when given, else in the zone
    of :data:`ZONES_BY_OFFSET` where the local hour is :data:`AFTERNOON_HOUR`."""
    if zone is None:
        offset = (AFTERNOON_HOUR - now.astimezone(UTC).hour + 12) % 24 - 12  # -12 .. +11
        zone = ZONES_BY_OFFSET[12 if offset == -12 else offset]
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    offset_now = local.utcoffset() or timedelta(0)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return DemoCenter(zone, offset_now.total_seconds() / 3600, midnight.astimezone(UTC))
