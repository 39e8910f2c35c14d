"""A take-over's long computations run beside the event loop, not on it.

Every stage's consumer heartbeats from the worker's one event loop. Summing a restored state (a
pass's ``take_over``) or rebuilding the board takes seconds on a day's state; held on the loop,
they silenced the worker's other group members past their session, the broker evicted them, and
every partition was handed over again — a storm that one bench run never left (docs/operations.md,
"Hand-overs"). Each test's take-over waits until the loop has answered while it runs: on the loop
itself it would wait in vain (and fail after a few seconds), beside it the loop answers at once.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pipeline import board_stage
from pipeline.board_out import taken_over
from pipeline.board_stage import BoardPartition, BoardStage
from pipeline.core.board import Board
from pipeline.settings import Settings

WAIT_SECONDS = 5.0


class LoopAnswers:
    """Set from the event loop while a computation beside it waits for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:  # made on the loop's thread
        self.answered = threading.Event()
        self.loop_thread = threading.get_ident()
        self.ticker = loop.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.answered.set()

    def waited_for(self) -> bool:
        """Called beside the loop: True once the loop has answered (False: it never did)."""
        return threading.get_ident() != self.loop_thread and self.answered.wait(WAIT_SECONDS)


class SlowPass:
    """A pass whose take-over lasts until the loop has answered (what a large state does)."""

    def __init__(self, answers: LoopAnswers) -> None:
        self.answers = answers
        self.asked: list[tuple[int, int]] = []

    def take_over(self, now_us: int, log_end: int = 0) -> Any:
        self.asked.append((now_us, log_end))
        return self.answers.waited_for()


def test_passes_take_over_beside_the_loop_with_their_partitions_end_offsets() -> None:
    async def scenario() -> tuple[dict[int, Any], list[SlowPass]]:
        answers = LoopAnswers(asyncio.get_running_loop())
        passes = [SlowPass(answers), SlowPass(answers)]
        taken = await taken_over({3: passes[0], 5: passes[1]}, {3: 1200, 5: 0})
        answers.ticker.cancel()
        return taken, passes

    taken, passes = asyncio.run(scenario())
    assert taken == {3: True, 5: True}  # each pass's take-over ran while the loop answered
    assert [asked[0][1] for asked in (p.asked for p in passes)] == [1200, 0]
    assert passes[0].asked[0][0] == passes[1].asked[0][0] > 0  # one clock reading for all of them


def test_the_board_is_rebuilt_beside_the_loop_after_a_hand_over(monkeypatch: Any) -> None:
    ran: list[bool] = []

    def slow_rebuilt(states: list[BoardPartition], board: Board, keep: Any) -> tuple[Board, list[set[str]]]:
        ran.append(answers.waited_for())
        return Board(), [{f"{len(states)} partitions"} for _ in states]

    async def scenario() -> BoardStage:
        nonlocal answers
        answers = LoopAnswers(asyncio.get_running_loop())
        stage = BoardStage(app=None, settings=Settings.from_env({}), sink=None, board_topic="reports",
                           clock=lambda: 0)  # fmt: skip
        stage.partitions = {0: BoardPartition(), 1: BoardPartition()}
        stage.forget(1)
        await stage.handed_over()
        answers.ticker.cancel()
        return stage

    answers: LoopAnswers
    monkeypatch.setattr(board_stage, "rebuilt", slow_rebuilt)
    stage = asyncio.run(scenario())
    assert ran == [True]
    assert stage.legacy == ["1 partitions"]  # rebuilt from what was left, and swapped in
