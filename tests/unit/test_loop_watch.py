"""The event-loop watch against a real asyncio loop that a callback holds for a while."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from pipeline.loop_watch import LoopWatch


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a long synchronous stretch of a stage does to everyone else


def test_a_blocked_loop_is_reported_with_where_it_is_and_for_how_long(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        watch = LoopWatch(asyncio.get_running_loop(), threshold=0.5, interval=0.05)
        watch.start()
        await asyncio.sleep(0.3)  # answering: nothing to report
        hold_the_loop(1.2)
        await asyncio.sleep(0.4)  # answering again
        watch.stop()
        watch.join(2)

    with caplog.at_level(logging.WARNING, logger="ccpulse.loop"):
        asyncio.run(scenario())
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "event loop blocked for" in messages[0] and "hold_the_loop" in messages[0]
    lasted = float(messages[1].split("block of ")[1].split(" s")[0])
    assert 1.0 <= lasted <= 1.6, messages[1]


def test_a_loop_that_keeps_answering_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        watch = LoopWatch(asyncio.get_running_loop(), threshold=0.5, interval=0.05)
        watch.start()
        for _ in range(10):
            hold_the_loop(0.2)  # short stretches, answering in between
            await asyncio.sleep(0.01)
        watch.stop()
        watch.join(2)

    with caplog.at_level(logging.WARNING, logger="ccpulse.loop"):
        asyncio.run(scenario())
    assert [record.getMessage() for record in caplog.records] == []
