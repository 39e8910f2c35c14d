"""metrics_minute from the board: the sums the board gives for the minutes a batch touched equal
the brute-force sum of every source's latest contribution (what ClickHouse's re-sum of
``contributions`` gives), in any order of reports and batches; minutes the board cannot vouch for
(older than its expiry horizon, or of a queue it does not hold whole) are left to ClickHouse."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.board import REPORT_RETENTION_US, Board, Report, whole_from_minute
from pipeline.core.counts import FIELDS
from pipeline.core.facts import board_minutes, contribution_rows
from pipeline.core.windows import minute_of

MINUTE_US = 60_000_000
NOW_US = 1_764_000_000 * 1_000_000
NOW_MINUTE = minute_of(NOW_US)


def counts_of(draw: st.DrawFn) -> tuple[int, ...]:
    values = [draw(st.integers(0, 3)) for _ in FIELDS]
    values[0] = max(values[0], 1)  # a contribution is never all zeros (lifecycle, issues)
    return tuple(values)


@st.composite
def report_streams(draw: st.DrawFn) -> list[list[Report]]:
    """Batches of reports from a few sources to two queues, each source's versions growing."""
    versions: dict[str, int] = {}
    batches = []
    for _ in range(draw(st.integers(1, 6))):
        batch = []
        for _ in range(draw(st.integers(1, 6))):
            source = draw(st.sampled_from(["contact:a", "contact:b", "contact:c", "issue:k"]))
            queue = draw(st.sampled_from(["sales", "support"]))
            versions[source] = versions.get(source, 0) + 1
            minutes = draw(st.lists(st.integers(NOW_MINUTE - 3, NOW_MINUTE), unique=True, max_size=3))
            entries = tuple(("voice", minute, counts_of(draw)) for minute in sorted(minutes))
            batch.append(Report(source, queue, entries, version=versions[source]))
        batches.append(batch)
    return batches


def brute_force(latest: dict[str, Report]) -> dict[tuple[str, str, int], tuple[int, ...]]:
    sums: dict[tuple[str, str, int], list[int]] = {}
    for report in latest.values():
        for channel, minute, values in report.minutes:
            total = sums.setdefault((report.queue, channel, minute), [0] * len(FIELDS))
            for index, value in enumerate(values):
                total[index] += value
    return {key: tuple(values) for key, values in sums.items()}


@settings(max_examples=200, deadline=None)
@given(report_streams())
def test_the_board_sums_equal_the_sum_of_every_latest_contribution(batches: list[list[Report]]) -> None:
    board = Board()
    latest: dict[str, Report] = {}  # (queue, source) -> its latest report, as contributions FINAL keeps it
    for batch in batches:
        touched: set[tuple[str, str, int]] = set()
        for report in batch:
            previous = latest.get(report.key)
            moved = {(c, m) for c, m, _ in previous.minutes} if previous else set()
            report = Report(report.source, report.queue, report.minutes, version=report.version,
                            left=tuple(sorted(moved - {(c, m) for c, m, _ in report.minutes})))  # fmt: skip
            board.apply(report)
            latest[report.key] = report
            touched |= contribution_rows(report)[1]
        sums, resum = board_minutes(board, touched, NOW_US, lambda queue: True)
        assert not resum
        expected = brute_force(latest)
        assert sums == {key: expected.get(key) for key in touched}  # None: nothing contributes any more


def test_minutes_the_board_cannot_vouch_for_are_summed_in_clickhouse() -> None:
    board = Board()
    old = minute_of(NOW_US - REPORT_RETENTION_US)  # a late event more than a day old
    recent = NOW_MINUTE
    first_whole = whole_from_minute(NOW_US)
    assert old < first_whole <= recent
    values = (1,) + (0,) * (len(FIELDS) - 1)
    board.apply(Report("contact:a", "sales", (("voice", old, values), ("voice", recent, values))))
    board.apply(Report("contact:b", "support", (("chat", recent, values),)))
    touched = {("sales", "voice", old), ("sales", "voice", recent), ("support", "chat", recent)}
    sums, resum = board_minutes(board, touched, NOW_US, lambda queue: queue != "support")
    assert sums == {("sales", "voice", recent): values}
    assert resum == {("sales", "voice", old), ("support", "chat", recent)}
