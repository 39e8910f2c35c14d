"""What the passes send the board: partials, and a new owner's fence (the contacts pass of the
ingest stage, ``pipeline/ingest.py``, and the issues pass, ``pipeline/issues_stage.py``).

A new owner of a partition (an input partition, or an issue-updates partition) first writes the
progress record that keeps its epoch and awaits its acknowledgement (a later owner must see it
even if this one dies now), then tells every board partition that it owns the partition now
(earlier owners' partials go: ``pipeline.core.board.Fence``), then sends every partial it holds;
all acknowledged before any batch of that partition is processed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from pipeline.changelog import send_records
from pipeline.core.board import Fence, MinutePartial, QueuePartial
from pipeline.core.wire import BoardMessage, encode, partial_messages


class HasPartials(Protocol):
    minutes: list[MinutePartial]
    live: list[QueuePartial]


async def send_partials(producer: Any, board_topic: str, partitions: int,
                        found: Iterable[HasPartials]) -> list[asyncio.Future[Any]]:  # fmt: skip
    """The partials of passes' batches (or take-overs), one message per board partition."""
    found = list(found)
    minutes = [partial for each in found for partial in each.minutes]
    live = [partial for each in found for partial in each.live]
    agents = [partial for each in found for partial in getattr(each, "agents", ())]  # the contacts pass's
    return [await producer.send(board_topic, message, partition=destination)
            for destination, message in partial_messages(minutes, live, partitions, agents)]  # fmt: skip


class TakenOver(HasPartials, Protocol):
    """What a pass's ``take_over`` gives: its progress record (keys as the pass keeps them), the
    fence, and every partial it holds."""

    @property
    def writes(self) -> Mapping[Any, bytes | None]: ...

    @property
    def fence(self) -> Fence: ...


class TakesOver(Protocol):
    """A pass restored from its changelog (``ContactPass``, ``IssuePass``)."""

    def take_over(self, now_us: int, log_end: int = 0) -> TakenOver: ...


async def taken_over(passes: Mapping[int, TakesOver], ends: Mapping[int, int]) -> dict[int, TakenOver]:
    """Each pass's ``take_over`` (``ends``: its partition's end offset now) at the wall clock now,
    computed in a worker thread: summing a restored state takes seconds on a day's contacts, and
    the event loop must keep heartbeating for the worker's consumer groups meanwhile (a member
    silent for the group session is evicted, and every partition is handed over again). The stage
    publishes the passes only after this returns, so nothing else touches them meanwhile."""
    now_us = time.time_ns() // 1000
    return await asyncio.to_thread(
        lambda: {partition: each.take_over(now_us, ends.get(partition, 0)) for partition, each in passes.items()}
    )


async def fence(producer: Any, board_topic: str, partitions: int, state_topic: str,
                taken: Mapping[int, TakenOver], key: Callable[[Any], bytes] = bytes,
                send: Callable[..., Awaitable[list[asyncio.Future[Any]]]] = send_records) -> None:  # fmt: skip
    """A take-over, in order: each pass's records (its new epoch, and the keys an earlier owner
    wrote after a later one took over, written again; ``key`` makes a changelog key of a written
    key; ``send`` sends them with the epoch: the stage's ``send_state``, which counts them)
    acknowledged, then the fences to every board partition, then the partials."""
    kept = [await send(producer, state_topic, partition, {key(k): v for k, v in each.writes.items()},
                       epoch=each.fence.epoch)
            for partition, each in taken.items()]  # fmt: skip
    await asyncio.gather(*(delivery for deliveries in kept for delivery in deliveries))
    message = encode(BoardMessage(fences=[each.fence for each in taken.values()]))
    deliveries = [await producer.send(board_topic, message, partition=board_partition)
                  for board_partition in range(partitions)]  # fmt: skip
    deliveries += await send_partials(producer, board_topic, partitions, taken.values())
    await asyncio.gather(*deliveries)
