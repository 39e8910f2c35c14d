"""The garbage-collector tuning of the worker and its writer process (pipeline/collector.py):
fewer collections, start-up frozen. In a process of its own: it changes the interpreter's collector for good."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_collects_rarely_and_never_walks_what_start_up_built_again() -> None:
    script = (
        "import gc; from pipeline.collector import GC_THRESHOLDS, tune_garbage_collection; "
        "before = gc.get_freeze_count(); tune_garbage_collection(); "
        "print(gc.get_threshold() == GC_THRESHOLDS, before == 0 < gc.get_freeze_count())"
    )
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["True", "True"]


def test_the_minute_partials_the_board_holds_cost_the_collector_nothing() -> None:
    # The board holds one MinutePartial per source, queue, channel and minute: half of the objects a
    # full collection walked in bench.passes' state of 600,000 events (docs/performance.md,
    # "What the collector walks").
    import gc

    from pipeline.core.board import Board, MinutePartial
    from pipeline.core.counts import FIELDS

    board = Board()
    gc.collect()
    tracked_before = len(gc.get_objects())
    for source in range(10_000):
        board.apply_partial(MinutePartial(source, "support", "voice", 29_000_000, tuple(range(len(FIELDS))), 1, 1))
    gc.collect()
    assert len(board.partials) == 10_000 and board.minute("support", "voice", 29_000_000) is not None
    grown = len(gc.get_objects()) - tracked_before
    assert grown < 100  # the board's own dicts and sums, not one per partial


def test_no_kind_of_partial_is_tracked_by_the_collector_as_the_board_decodes_it() -> None:
    import gc
    import typing

    import msgspec

    from pipeline.core import board

    examples = [
        board.MinutePartial(1, "support", "voice", 29_000_000, (1, 2)),
        board.LivePartial(1, "support", (("voice", 5),), (("available", 2),)),
        board.WaitingPartial(1, "support", "c1", "voice", 5),
        board.AgentDayPartial(1, "support", 0, (1, 2)),
        board.AgentRecentPartial(1, "support", "a1", ((1, 2, 0),)),
        board.AgentPartial(1, "a1", "available", 0, ("support",), None, ((0, (1, 2)),)),
        board.AgentWorkPartial(1, "a1", (("c1", "support", "voice", 1),), ((0, 1, 2),)),
    ]
    assert {type(each) for each in examples} == set(typing.get_args(board.Partial))
    for each in examples:
        decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(each), type=type(each))
        assert decoded == each and not gc.is_tracked(decoded), type(each).__name__
