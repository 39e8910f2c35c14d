"""/api/snapshot shows the gauges' own numbers, and a status against the target."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from pipeline.core.board import Board, Report
from pipeline.core.counts import Counts
from pipeline.core.snapshot import snapshot, status
from pipeline.core.targets import Targets
from pipeline.exposition import BoardCollector

NOW_US = 1_795_435_200_000_000  # 2026-11-23 12:00 UTC
MINUTE = NOW_US // 60_000_000
UTC = ZoneInfo("UTC")


def test_status_says_on_target_near_or_breached() -> None:
    # target 0.80; near = up to 5 points below
    assert status(0.80, 0.80) == "on_target"
    assert status(0.76, 0.80) == "near"
    assert status(0.70, 0.80) == "breached"
    assert status(None, 0.80) is None


def test_the_snapshot_equals_the_gauges_for_the_same_board() -> None:
    board = Board()
    busy = Counts(offered=10, answered=8, answered_in_sl=6, abandoned=2, short_abandoned=1, wait_us_sum=80_000_000,
                  handled=7, handle_us_sum=2_100_000_000, csat_responses=4, csat_positive=3, issues_judged=5,
                  issues_fcr=4, issues_resolved=5, resolution_us_sum=3_000_000_000)  # fmt: skip
    board.apply(Report("contact:x", "billing", (("voice", MINUTE - 20, busy.as_tuple()),)))
    board.apply(Report("contact:y", "billing", (("voice", MINUTE, Counts(offered=1).as_tuple()),),
                       waiting=(("voice", NOW_US - 42_000_000),)))  # fmt: skip
    board.apply(Report("agent:a1", "billing", agent_state="available"))
    registry = CollectorRegistry()
    registry.register(BoardCollector(lambda: board, lambda: NOW_US, UTC, Targets()))
    gauge = registry.get_sample_value
    [tile] = snapshot(board, NOW_US, UTC, Targets())["queues"]
    today = {"queue": "billing", "channel": "voice", "window": "today"}
    assert tile["service_level"]["today"] == gauge("ccpulse_service_level_ratio", today) == 6 / 9
    assert tile["service_level"]["15m"] is None  # the answered contacts are 20 minutes old
    assert tile["status"] == {"today": "breached", "15m": None}
    assert tile["asa_seconds"] == gauge("ccpulse_asa_seconds", today) == 10.0
    # 応答率 and 時間内応答率: over the 11 offered (10 + 1), 8 answered, 6 of them within the threshold
    assert tile["answer_ratio"] == gauge("ccpulse_answer_ratio", today) == 8 / 11
    assert tile["answered_in_sl_ratio"] == gauge("ccpulse_answered_in_sl_ratio", today) == 6 / 11
    assert tile["abandon_ratio"] == gauge("ccpulse_abandon_ratio", today)
    assert tile["aht_seconds"] == gauge("ccpulse_aht_seconds", today) == 300.0
    assert tile["csat_ratio"] == gauge("ccpulse_csat_ratio", today) == 0.75
    assert tile["fcr_ratio"] == gauge("ccpulse_fcr_ratio", today) == 0.8
    assert tile["art_seconds"] == gauge("ccpulse_art_seconds", today) == 600.0
    live = {"queue": "billing", "channel": "voice"}
    assert tile["waiting"] == gauge("ccpulse_queue_waiting", live) == 1
    assert tile["oldest_wait_seconds"] == gauge("ccpulse_queue_oldest_wait_seconds", live) == 42.0
    assert tile["agents"]["available"] == gauge("ccpulse_agents", {"queue": "billing", "state": "available"}) == 1
    assert tile["target"] == {"service_level": 0.8, "threshold_seconds": 20}


def test_each_queue_s_service_level_follows_its_definition() -> None:
    """8 answered (6 within the threshold), 4 abandoned: 1 short, 2 after it but within the
    threshold, 1 after the threshold. Each definition of docs/metrics.md, on the gauge and the tile."""
    counts = Counts(offered=12, answered=8, answered_in_sl=6, abandoned=4, short_abandoned=1, abandoned_in_sl=2)
    definitions = {
        "metrics_md": ({}, 6 / 11),
        "met": ({"sl_abandons_in_threshold_met": True}, 8 / 11),
        "all": ({"sl_abandons": "all"}, 6 / 12),
        "all_met": ({"sl_abandons": "all", "sl_abandons_in_threshold_met": True}, 9 / 12),
        "excluded": ({"sl_abandons": "excluded"}, 6 / 8),
    }
    targets = Targets.from_document({"queues": {queue: {"voice": entry} for queue, (entry, _) in definitions.items()}})
    board = Board()
    for queue in definitions:
        board.apply(Report(f"contact:{queue}", queue, (("voice", MINUTE - 20, counts.as_tuple()),)))
    registry = CollectorRegistry()
    registry.register(BoardCollector(lambda: board, lambda: NOW_US, UTC, targets))
    tiles = {tile["queue"]: tile for tile in snapshot(board, NOW_US, UTC, targets)["queues"]}
    for queue, (_, level) in definitions.items():
        labels = {"queue": queue, "channel": "voice", "window": "today"}
        assert registry.get_sample_value("ccpulse_service_level_ratio", labels) == pytest.approx(level), queue
        assert tiles[queue]["service_level"]["today"] == pytest.approx(level), queue
        assert registry.get_sample_value("ccpulse_abandon_ratio", labels) == pytest.approx(3 / 11)  # unchanged
