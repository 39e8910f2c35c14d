"""Business time (``Calendar.open_us``, issue 23): the time a queue was open over a span, equal to
the brute-force model's minute-by-minute reading, across daylight-saving changes, half-hour and
45-minute offsets, holidays and closed dates; and the promise of a written channel read in it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.calendar import calendar_of
from pipeline.core.contract import Event
from pipeline.core.metrics import past_promise
from pipeline.core.targets import Targets
from tests.metrics_model import business_us, model
from tests.unit.test_metrics_core import BASE, SETTINGS, board_counts, nonzero, run

HOUR_US = 3600 * 1_000_000
ZONES = ["Asia/Tokyo", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu", "Asia/Kolkata"]
# around the daylight-saving changes of 2026 (New York 03-08 and 11-01, London 03-29 and 10-25,
# Lord Howe's half hour 04-05 and 10-04) and Japan's holidays of November
STARTS = [datetime(2026, month, day, tzinfo=UTC) for month, day in ((3, 6), (3, 27), (4, 3), (10, 2), (10, 23),
                                                                     (10, 30), (11, 21))]  # fmt: skip
HOURS = [None, {"mon": "09:00-18:00", "tue": ["00:00-02:30", "13:00-17:30"], "sun": "01:00-24:00"},
         {day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}]  # fmt: skip


@SETTINGS
@given(st.sampled_from(ZONES), st.sampled_from(HOURS), st.sampled_from([None, "JP", "US", "GB"]),
       st.sampled_from(STARTS), st.integers(0, 5 * 24 * HOUR_US), st.integers(0, 4 * 24 * HOUR_US))  # fmt: skip
def test_business_time_is_the_open_minutes_summed(
    zone: str, hours: dict[str, Any] | None, country: str | None, start: datetime, offset: int, span: int
) -> None:
    entry = {"hours": hours, "holidays": country, "closed_dates": ["2026-11-24"]}
    calendar = calendar_of({key: value for key, value in entry.items() if value is not None}, ZoneInfo(zone))
    start_us = int(start.timestamp() * 1_000_000) + offset
    assert calendar.open_us(start_us, start_us + span) == business_us(calendar, start_us, start_us + span)


# the instants the zones' offsets change in 2026 (UTC)
CHANGES = {
    "America/New_York": [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)],
    "Europe/London": [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    "Australia/Lord_Howe": [datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 10, 3, 15, 30, tzinfo=UTC)],
}
NIGHT_AND_DAY = {day: ["00:00-02:30", "03:00-09:15", "16:45-24:00"] for day in ("mon", "sat", "sun")}


@SETTINGS
@given(st.sampled_from(sorted(CHANGES)), st.integers(0, 1), st.integers(-12 * HOUR_US, 12 * HOUR_US),
       st.integers(0, 12 * HOUR_US))  # fmt: skip
def test_business_time_on_the_day_the_offset_changes(zone: str, which: int, offset: int, span: int) -> None:
    calendar = calendar_of({"hours": NIGHT_AND_DAY}, ZoneInfo(zone))
    start_us = int(CHANGES[zone][which].timestamp() * 1_000_000) + offset
    assert calendar.open_us(start_us, start_us + span) == business_us(calendar, start_us, start_us + span)


WEEKDAYS = {day: "09:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")}


def test_a_promise_in_business_hours_waits_out_the_night_and_the_holiday() -> None:
    # Offered Friday 2026-11-20 17:00 in Tokyo, open 09:00-18:00 on weekdays, Monday 11-23 a
    # holiday (勤労感謝の日): 24 business hours are up on Thursday 11-26 at 14:00 — an hour on
    # Friday, nine on Tuesday and Wednesday, five on Thursday — and past it just after.
    email = {"sl_threshold_seconds": 24 * 3600, "sl_business_hours": True}
    targets = Targets.from_document(
        {"queues": {"mail": {"timezone": "Asia/Tokyo", "holidays": "JP", "hours": WEEKDAYS, "email": email}}}
    )
    tokyo = ZoneInfo("Asia/Tokyo")
    offered = int(datetime(2026, 11, 20, 17, 0, tzinfo=tokyo).timestamp() * 1_000_000)

    def past(day: int, hour: int, minute: int = 0) -> int:
        now = int(datetime(2026, 11, day, hour, minute, tzinfo=tokyo).timestamp() * 1_000_000)
        return past_promise(now, [offered], 24 * HOUR_US, lambda a, b: targets.waited_us("mail", "email", a, b))

    assert (past(23, 23), past(26, 14), past(26, 14, 1)) == (0, 0, 1)
    assert targets.waited_us("mail", "chat", offered, offered + HOUR_US) == HOUR_US  # chat: time that passes


Contact = tuple[int, int, bool]  # offered (minutes after BASE), answered or abandoned (minute of the 4th day)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 3 * 24 * 60), st.integers(0, 24 * 60 - 1), st.booleans()), min_size=1,
                max_size=6), st.sampled_from([WEEKDAYS, *HOURS[1:]]), st.sampled_from([None, "JP"]),
       st.sampled_from([3600, 4 * 3600, 86400]), st.booleans())  # fmt: skip
def test_service_level_in_business_hours_equals_the_model(
    contacts: list[Contact], hours: dict[str, Any], country: str | None, threshold: int, counted: bool
) -> None:
    # e-mails offered over three days and answered (or abandoned) on the fourth, 2026-11-26 (UTC),
    # whose "today" every answer is in; the queue keeps Tokyo's hours (and Japan's holidays)
    email = {"sl_threshold_seconds": threshold, "sl_business_hours": True, "sl_abandons": "all",
             "sl_abandons_in_threshold_met": True}  # fmt: skip
    entry = {
        "timezone": "Asia/Tokyo",
        "hours": hours,
        "out_of_hours": "counted" if counted else "apart",
        "email": email,
    }
    targets = Targets.from_document({"queues": {"mail": {**entry, **({"holidays": country} if country else {})}}})
    day, messages = BASE + 3 * 24 * HOUR_US, []
    for n, (offered_minute, ended_minute, answered) in enumerate(contacts):
        offered = Event(f"o{n}", "contact.offered", BASE + offered_minute * 60_000_000 + 7, f"c{n}", "email", "mail",
                        "cu", "r0")  # fmt: skip
        kind = "contact.answered" if answered else "contact.abandoned"
        ended = Event(f"a{n}", kind, day + ended_minute * 60_000_000, f"c{n}", agent_id="a1")
        messages += [(offered, f"0:{2 * n}"), (ended, f"0:{2 * n + 1}")]
    now, utc = day + 24 * HOUR_US - 1, ZoneInfo("UTC")
    expected = model(messages, now, utc, targets).counts
    assert nonzero(board_counts(run(messages, targets).board, now, utc, targets)) == nonzero(expected)
