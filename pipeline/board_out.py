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
from collections.abc import Iterable
from typing import Any, Protocol

from pipeline.changelog import send_records
from pipeline.core.board import Fence, LivePartial, MinutePartial
from pipeline.core.wire import BoardMessage, encode, partial_messages


class HasPartials(Protocol):
    minutes: list[MinutePartial]
    live: list[LivePartial]


async def send_partials(producer: Any, board_topic: str, partitions: int,
                        found: Iterable[HasPartials]) -> list[asyncio.Future[Any]]:  # fmt: skip
    """The partials of passes' batches (or take-overs), one message per board partition."""
    found = list(found)
    minutes = [partial for each in found for partial in each.minutes]
    live = [partial for each in found for partial in each.live]
    return [await producer.send(board_topic, message, partition=destination)
            for destination, message in partial_messages(minutes, live, partitions)]  # fmt: skip


async def fence(producer: Any, board_topic: str, partitions: int, state_topic: str,
                records: dict[int, dict[bytes, bytes | None]], fences: list[Fence],
                found: Iterable[HasPartials]) -> None:  # fmt: skip
    """A take-over, in order: ``records`` (per state partition: the progress records with the new
    epochs) acknowledged, then ``fences`` to every board partition, then the partials ``found``."""
    kept = [await send_records(producer, state_topic, partition, written) for partition, written in records.items()]
    await asyncio.gather(*(delivery for deliveries in kept for delivery in deliveries))
    message = encode(BoardMessage(fences=fences))
    deliveries = [await producer.send(board_topic, message, partition=board_partition)
                  for board_partition in range(partitions)]  # fmt: skip
    deliveries += await send_partials(producer, board_topic, partitions, found)
    await asyncio.gather(*deliveries)
