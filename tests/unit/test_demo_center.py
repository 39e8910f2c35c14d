"""Where ``ccpulse up`` puts its simulated center (pipeline/simulation/demo.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.simulation.demo import AFTERNOON_HOUR, ZONES_BY_OFFSET, demo_center


@pytest.mark.parametrize("hour", range(24))
@pytest.mark.parametrize("minute", [0, 6, 59])
def test_at_any_utc_hour_the_default_center_is_in_its_early_afternoon(hour: int, minute: int) -> None:
    now = datetime(2026, 12, 2, hour, minute, 30, tzinfo=UTC)
    center = demo_center(now)
    local = now.astimezone(ZoneInfo(center.zone))
    assert local.hour == AFTERNOON_HOUR
    assert center.day_start == local.replace(hour=0, minute=0, second=0).astimezone(UTC)
    assert now - center.day_start == timedelta(hours=AFTERNOON_HOUR, minutes=minute, seconds=30)
    assert center.utc_offset_hours == local.utcoffset().total_seconds() / 3600  # type: ignore[union-attr]


#   06:06 UTC (the hour of the report in issue 19: the UTC center was closed) -> Asia/Singapore 14:06
def test_the_hour_of_the_closed_board_gets_an_open_center() -> None:
    center = demo_center(datetime(2026, 12, 2, 6, 6, tzinfo=UTC))
    assert (center.zone, center.utc_offset_hours) == ("Asia/Singapore", 8)
    assert center.day_start == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


def test_a_zone_the_user_chose_is_kept_with_its_own_midnight_and_offset() -> None:
    now = datetime(2026, 12, 2, 6, 6, tzinfo=UTC)
    assert demo_center(now, "Asia/Kolkata") == demo_center(now, "Asia/Kolkata")
    kolkata = demo_center(now, "Asia/Kolkata")
    assert kolkata.utc_offset_hours == 5.5
    assert kolkata.day_start == datetime(2026, 12, 1, 18, 30, tzinfo=UTC)
    # a day when the zone's offset changes: Europe/Berlin's midnight is still 23:00 UTC the day before
    berlin = demo_center(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), "Europe/Berlin")
    assert berlin.day_start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC) and berlin.utc_offset_hours == 2


def test_the_default_zones_keep_one_offset_all_year() -> None:
    for offset, name in ZONES_BY_OFFSET.items():
        for month in range(1, 13):
            moment = datetime(2026, month, 15, 12, tzinfo=UTC).astimezone(ZoneInfo(name))
            assert moment.utcoffset() == timedelta(hours=offset), (name, month)
