"""The board stage's board across take-overs and hand-overs: each partial is kept once, decoded on
the board (the changelog's bytes are let go once decoded), and the board of the partitions owned
after any sequence of take-overs and hand-overs is the board of their partials applied afresh."""

from __future__ import annotations

import asyncio

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.board_stage import BoardPartition, BoardStage
from pipeline.core import board
from pipeline.core.partitions import partition_of
from pipeline.core.wire import encode
from pipeline.settings import Settings

SETTINGS = Settings.from_env({"CCPULSE_PARTITIONS": "4"}, env_file=None)
QUEUES = [f"queue-{n}" for n in range(8)]  # over the four board partitions


def partials_of(queue: str, source: int) -> list[board.Partial]:
    """One partial of every kind for ``queue`` (agents named after it, so they spread too)."""
    agent = f"{queue}-agent"
    return [
        board.MinutePartial(source, queue, "voice", 29_000_000, (1, 2), 5, 1),
        board.LivePartial(source, queue, (("voice", 5),), (("available", 2),), 5, 1),
        board.WaitingPartial(source, queue, f"{queue}-c1", "voice", 5, 5, 1),
        board.AgentDayPartial(source, queue, 0, (1, 2), 5, 1),
        board.AgentRecentPartial(source, queue, agent, ((1, 2, 0),), 5, 1),
        board.AgentPartial(source, agent, "available", 0, (queue,), None, ((0, (1, 2)),), 5, 1),
        board.AgentWorkPartial(source, agent, ((f"{queue}-c1", queue, "voice", 1),), ((0, 1, 2),), 5, 1),
    ]


ALL = [partial for queue in QUEUES for source in (0, 1) for partial in partials_of(queue, source)]
LEGACY = {f"{queue}\x1fcontact\x1fc-old": b"\x90" for queue in QUEUES}  # reports of before December 2026


def board_partition(key: str) -> int:
    return partition_of(key.split("\x1f", 1)[0], SETTINGS.partitions)


def restored(partition: int) -> BoardPartition:
    """A board partition as take_over restores it from its changelog."""
    records = {p.key: encode(p) for p in ALL if board_partition(p.key) == partition}
    records.update((key, value) for key, value in LEGACY.items() if board_partition(key) == partition)
    return BoardPartition(records=records, fences={0: 5, 1: 5})


def afresh(partitions: set[int]) -> board.Board:
    fresh = board.Board()
    if partitions:  # each restored partition brings the input partitions' fences
        fresh.fences.update({0: 5, 1: 5})
    for partial in ALL:
        if board_partition(partial.key) in partitions:
            fresh.apply_partial(msgspec.msgpack.decode(encode(partial), type=type(partial)))
    return fresh


def test_the_partials_spread_over_every_board_partition() -> None:
    assert {board_partition(p.key) for p in ALL} == set(range(SETTINGS.partitions))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=8))
def test_the_board_after_take_overs_and_hand_overs_is_its_partitions_partials_afresh(
    steps: list[tuple[bool, int]],
) -> None:
    async def scenario() -> None:
        stage = BoardStage(app=None, settings=SETTINGS, sink=None, board_topic="reports", clock=lambda: 0)
        for take, partition in steps:
            if take:  # as take_over: restored, then rebuilt
                stage.partitions[partition] = restored(partition)
                await stage._rebuild()
            else:  # as a hand-over: forgotten, then rebuilt
                stage.forget(partition)
                await stage.handed_over()
            owned = set(stage.partitions)
            assert stage.board == afresh(owned)
            assert all(not state.records and not state.restored for state in stage.partitions.values())
            legacy = {key for key in LEGACY if board_partition(key) in owned}
            assert set(stage.legacy) == legacy
            assert stage.keys() == len(stage.board.partials) + len(legacy)

    asyncio.run(scenario())


def test_a_take_over_cancelled_in_its_rebuild_leaves_the_restored_records_for_the_next() -> None:
    async def scenario() -> BoardStage:
        stage = BoardStage(app=None, settings=SETTINGS, sink=None, board_topic="reports", clock=lambda: 0)
        stage.partitions = {0: restored(0), 1: restored(1)}
        rebuild = asyncio.ensure_future(stage._rebuild())
        await asyncio.sleep(0)
        rebuild.cancel()  # the hand-over that cancels a take-over under way
        await asyncio.wait([rebuild])
        assert stage.partitions[0].restored and stage.partitions[0].records  # not let go
        stage.forget(1)
        await stage.handed_over()
        return stage

    stage = asyncio.run(scenario())
    assert stage.board == afresh({0})
