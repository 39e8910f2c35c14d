"""The board's window sums (``15m``, ``1h``, ``today``) read whole hours from sums taken when a
window read them and dropped when a minute of theirs changes, and only the edges' minutes: they
must equal the brute-force sum of every minute in the window, whatever partials came, were
replaced, emptied or forgotten between reads, and wherever the window's edges fall (a queue's day
can start at any minute: Asia/Kathmandu is UTC+5:45)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.board import Board, MinutePartial
from pipeline.core.counts import FIELDS, Counts
from pipeline.core.windows import WINDOWS, Day, window_minutes

# 2025-11-23 17:00 UTC: most minutes fall in the three hours after it, around the hour edges and
# Asia/Kathmandu's midnight (18:15 UTC); the others anywhere in three days
BASE_MINUTE = 20_416 * 1440 + 17 * 60
DENSE = 180
# the minutes next to an hour's edge, or to Kathmandu's midnight (minute 75): where a window's
# whole hours meet its edges' minutes
NEAR_EDGES = sorted({edge + off for edge in (0, 60, 75, 120, 180) for off in range(-2, 3)})
MINUTES = st.one_of(st.sampled_from(NEAR_EDGES), st.integers(0, DENSE), st.integers(0, 3 * 1440))
QUEUES = ("sales", "support")


@st.composite
def partial_streams(draw: st.DrawFn) -> list[tuple[str, MinutePartial]]:
    """("apply" | "forget" | "read", partial): sources' partials over three days of minutes, versions
    growing, and windows read between them."""
    steps, version = [], 0
    for _ in range(draw(st.integers(1, 80))):
        version += 1
        source = draw(st.integers(0, 3))
        queue = draw(st.sampled_from(QUEUES))
        minute = BASE_MINUTE + draw(MINUTES)
        values = tuple(draw(st.integers(0, 4)) for _ in FIELDS) if draw(st.booleans()) else ()
        partial = MinutePartial(source, queue, "voice", minute, values, 1, version)
        steps.append(("forget" if draw(st.integers(0, 5)) == 0 else "apply", partial))
        if draw(st.integers(0, 4)) == 0:
            steps.append(("read", partial))  # every hour's sum taken, to be dropped by what follows
    return steps


def brute_force(board: Board, queue: str, first: int, last: int) -> tuple[int, ...]:
    total = Counts()
    line = board.lines.get((queue, "voice"))
    for minute, counts in line.minutes.items() if line else ():
        if first <= minute <= last:
            total.add(counts)
    return total.as_tuple()


def applied(steps: list[tuple[str, MinutePartial]]) -> Board:
    board = Board()
    for action, partial in steps:
        if action == "apply":
            board.apply_partial(partial)
        elif action == "forget":
            board.forget(partial.key)
        else:
            for line in board.lines.values():
                line.window(BASE_MINUTE - 120, BASE_MINUTE + 3 * 1440 + 120)
    return board


@settings(max_examples=300, deadline=None)
@given(partial_streams(), MINUTES, MINUTES)
def test_a_window_of_any_minutes_equals_the_sum_of_its_minutes(steps: list[tuple[str, MinutePartial]], a: int,
                                                               b: int) -> None:  # fmt: skip
    board = applied(steps)
    edges = [BASE_MINUTE + minute for minute in (*NEAR_EDGES, a, b)]
    for (queue, _), line in board.lines.items():
        for first in edges:  # every window between two of them, each edge on either side of an hour's
            for last in edges:
                assert line.window(first, last).as_tuple() == brute_force(board, queue, first, last), (first, last)
        hours: dict[int, Counts] = {}
        for minute, counts in line.minutes.items():
            hours.setdefault(minute // 60, Counts()).add(counts)
        for hour, summed in line.hours.items():  # the sums taken are the hours' sums now, none of nothing
            assert summed.as_tuple() == hours[hour].as_tuple()


@settings(max_examples=200, deadline=None)
@given(
    partial_streams(),
    st.one_of(st.integers(0, DENSE * 60), st.integers(0, 3 * 1440 * 60)),
    st.sampled_from(["UTC", "Asia/Kathmandu", "Asia/Tokyo"]),
)
def test_the_windows_the_gauges_read_equal_the_sum_of_their_minutes(steps: list[tuple[str, MinutePartial]],
                                                                    second: int, zone: str) -> None:  # fmt: skip
    board = applied(steps)
    now_us = (BASE_MINUTE * 60 + second) * 1_000_000 + 123
    day = Day(ZoneInfo(zone))
    ranges = window_minutes(now_us, day)
    windows = board.window_counts(now_us, lambda queue: day)
    found = {(queue, window): counts.as_tuple() for queue, _, window, counts in windows}
    assert set(found) == {(queue, window) for queue, _ in board.lines for window in WINDOWS}
    for (queue, window), counts in found.items():
        assert counts == brute_force(board, queue, *ranges[window])
