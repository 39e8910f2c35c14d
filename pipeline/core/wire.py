"""The messages between the worker's stages (internal topics).

Every internal message and every table write goes to an explicit partition
(``pipeline.core.partitions.partition_of``), so that a key's state always lives with the
partition its messages arrive on, whatever client library sends them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import msgspec
from msgspec import Struct

from pipeline.core.board import (
    AgentDayPartial,
    AgentPartial,
    AgentRecentPartial,
    AgentSide,
    AgentWorkPartial,
    Fence,
    LivePartial,
    MinutePartial,
    Partial,
    QueuePartial,
    Report,
    WaitingPartial,
)
from pipeline.core.contract import Event
from pipeline.core.engine import IssueUpdate
from pipeline.core.partitions import partition_of

T = TypeVar("T")


class Routed(Struct, array_like=True, frozen=True):
    """A valid event on its way to its contact's pass."""

    source: str  # "<input partition>:<offset>": the message's identity, for replays
    event: Event


class Tick(Struct, array_like=True, frozen=True):
    source_partition: int
    at: int  # the greatest occurred_at of valid events of that input partition so far


class BoardMessage(Struct, array_like=True, frozen=True):
    reports: list[Report] = []
    ticks: list[Tick] = []
    minutes: list[MinutePartial] = []
    live: list[LivePartial] = []
    fences: list[Fence] = []
    # issue 22: agents' time in state, and the agent list (routed by queue, and by agent id)
    agent_days: list[AgentDayPartial] = []
    agent_recent: list[AgentRecentPartial] = []
    agent_states: list[AgentPartial] = []
    agent_work: list[AgentWorkPartial] = []
    waiting: list[WaitingPartial] = []  # since 2026-12-06: last, so that older messages decode

    def partials(self) -> list[Partial]:
        return [*self.minutes, *self.live, *self.waiting, *self.agent_days, *self.agent_recent, *self.agent_states,
                *self.agent_work]  # fmt: skip


# Internal messages carry lists: one message per destination partition per processed batch,
# at most ITEMS_PER_MESSAGE items, instead of one message per item (a send costs far more
# than an item). Order within a partition is kept, and every item is idempotent on its own.
ITEMS_PER_MESSAGE = 1000
# ... and at most MAX_MESSAGE_BYTES each, well under the producer's request limit (Faust's
# producer_max_request_size, 1,000,000 bytes; the broker's message.max.bytes, ~1 MiB): items differ
# in size (an agent's recent intervals run to ~1 KB), and 1,000 of them once made a message of
# 1,025,719 bytes that the producer refused, which stopped the worker (docs/operations.md).
MAX_MESSAGE_BYTES = 512 * 1024

_encoder = msgspec.msgpack.Encoder()
issue_update_decoder = msgspec.msgpack.Decoder(list[IssueUpdate])
board_decoder = msgspec.msgpack.Decoder(BoardMessage)
encode = _encoder.encode


def chunks(items: list[T]) -> list[list[T]]:
    return [items[i : i + ITEMS_PER_MESSAGE] for i in range(0, len(items), ITEMS_PER_MESSAGE)]


def board_messages(reports: Iterable[Report], partitions: int) -> Iterator[tuple[int, bytes]]:
    """Reports as messages to the board: (partition of the report's queue, message), in the order made."""
    return _messages(reports, lambda report: report.queue, partitions, lambda chunk: BoardMessage(reports=chunk))


def _queue_of(partial: QueuePartial | AgentSide) -> str:
    return partial.queue  # type: ignore[union-attr]


def _stored_under(partial: QueuePartial | AgentSide) -> str:
    return partial.key.split("\x1f", 1)[0]  # as the board stores its key: a queue, or an agent


# The board message's field for each kind of a queue's or an agent's partial, and how it is routed.
_SIDE_FIELDS: tuple[tuple[type, str, Callable[[QueuePartial | AgentSide], str]], ...] = (
    (LivePartial, "live", _queue_of), (WaitingPartial, "waiting", _queue_of),
    (AgentDayPartial, "agent_days", _stored_under), (AgentRecentPartial, "agent_recent", _stored_under),
    (AgentPartial, "agent_states", _stored_under), (AgentWorkPartial, "agent_work", _stored_under),
)  # fmt: skip


def partial_messages(minutes: Iterable[MinutePartial], live: Iterable[QueuePartial], partitions: int,
                     agents: Iterable[AgentSide] = ()) -> Iterator[tuple[int, bytes]]:  # fmt: skip
    """A pass's partials as messages to the board: (partition of the partial's queue, or agent, message)."""
    yield from _messages(minutes, lambda partial: partial.queue, partitions, lambda chunk: BoardMessage(minutes=chunk))
    by_kind: dict[type, list[QueuePartial | AgentSide]] = defaultdict(list)
    for partial in (*live, *agents):
        by_kind[type(partial)].append(partial)
    for kind, name, route in _SIDE_FIELDS:
        yield from _messages(by_kind[kind], route, partitions,
                             lambda chunk, name=name: BoardMessage(**{name: chunk}))  # type: ignore[misc]  # fmt: skip


def issue_messages(updates: Iterable[IssueUpdate], partitions: int) -> Iterator[tuple[int, bytes]]:
    """Issue updates as messages to the issues stage: (partition of the issue key, message)."""
    return _messages(updates, lambda update: update.key, partitions, lambda chunk: chunk)


def _messages(items: Iterable[T], key: Callable[[T], str], partitions: int,
              message: Callable[[list[T]], object]) -> Iterator[tuple[int, bytes]]:  # fmt: skip
    by_partition: dict[int, list[T]] = defaultdict(list)
    for item in items:
        by_partition[partition_of(key(item), partitions)].append(item)
    for destination, found in by_partition.items():
        for chunk in chunks(found):
            for encoded in _within_limit(chunk, message):
                yield destination, encoded


def _within_limit(items: list[T], message: Callable[[list[T]], object]) -> Iterator[bytes]:
    """``items`` as one message, or halved (in order) until each is at most MAX_MESSAGE_BYTES; a
    single item over it goes alone. The largest kind is an agent's intervals of the last hour
    (``AgentRecentPartial``, 20 bytes an interval: the producer would refuse one only past ~50,000
    state changes of one agent in an hour); a queue's waiting contacts go one by one."""
    encoded = encode(message(items))
    if len(encoded) <= MAX_MESSAGE_BYTES or len(items) == 1:
        yield encoded
        return
    half = len(items) // 2
    yield from _within_limit(items[:half], message)
    yield from _within_limit(items[half:], message)
