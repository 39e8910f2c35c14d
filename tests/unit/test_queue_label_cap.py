"""A cap on distinct queue label values: past it, queues are folded into queue="_other" on
/metrics only (counts summed, ratios from the sums), and the folding is counted."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from pipeline.core.board import Board, Report
from pipeline.core.counts import Counts
from pipeline.core.targets import Targets
from pipeline.exposition import BoardCollector

NOW_US = 1_795_392_000_000_000  # 2026-11-23 00:00 UTC
MINUTE = NOW_US // 60_000_000


def board_with(queues: dict[str, tuple[int, int]]) -> Board:
    """Per queue: (answered in SL, answered) in the current minute, voice; one waiting contact each."""
    board = Board()
    for number, (queue, (in_sl, answered)) in enumerate(queues.items()):
        counts = Counts(answered=answered, answered_in_sl=in_sl).as_tuple()
        board.apply(Report(f"contact:{queue}", queue, (("voice", MINUTE, counts),),
                           waiting=(("voice", NOW_US - (number + 1) * 10_000_000),)))  # fmt: skip
        board.apply(Report(f"agent:{queue}", queue, agent_state="available"))
    return board


def scrape(board: Board, cap: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(BoardCollector(lambda: board, lambda: NOW_US, ZoneInfo("UTC"), Targets(), max_queues=cap))
    return registry


def test_queues_past_the_cap_fold_into_one_series() -> None:
    board = board_with({"a": (1, 1), "b": (1, 2), "c": (0, 1), "d": (3, 4), "e": (1, 4)})
    registry = scrape(board, cap=3)
    value = registry.get_sample_value
    labels = {"channel": "voice", "window": "15m"}
    for queue in ("a", "b", "c"):
        assert value("ccpulse_answered", {"queue": queue, **labels}) is not None
    for queue in ("d", "e"):
        assert value("ccpulse_answered", {"queue": queue, **labels}) is None
    other = {"queue": "_other", **labels}
    assert value("ccpulse_answered", other) == 8
    assert value("ccpulse_answered_in_sl", other) == 4
    assert value("ccpulse_service_level_ratio", other) == 4 / 8  # from the sums, not a mean of ratios
    assert value("ccpulse_queue_waiting", {"queue": "_other", "channel": "voice"}) == 2
    assert value("ccpulse_queue_oldest_wait_seconds", {"queue": "_other", "channel": "voice"}) == 50  # e: the longest
    assert value("ccpulse_agents", {"queue": "_other", "state": "available"}) == 2
    assert value("ccpulse_service_level_target_ratio", {"queue": "_other", "channel": "voice"}) is None
    assert value("ccpulse_queues_folded") == 2


def test_under_the_cap_nothing_is_folded() -> None:
    registry = scrape(board_with({"a": (1, 1), "b": (1, 2)}), cap=3)
    assert registry.get_sample_value("ccpulse_queues_folded") == 0
    assert (
        registry.get_sample_value("ccpulse_answered", {"queue": "_other", "channel": "voice", "window": "15m"}) is None
    )
