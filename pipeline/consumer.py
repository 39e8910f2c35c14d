"""Faust's Kafka consumer, committing by the worker's own account (``pipeline.core.commits``).

Faust decides what to commit from the offsets its streams acknowledged; some of its paths
acknowledge messages whose work was never done (see ``pipeline.core.commits``). This consumer
keeps Faust's reading, seeking and committing, and replaces only the choice of the offset: the
first one, per partition, that the worker has not *finished* (state written, messages sent, rows
in ClickHouse). The agents report what they received and what is finished to the gate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import ack_lock

from pipeline.core.commits import CommitGate

log = logging.getLogger("ccpulse.commits")

# How long the broker may hold a fetch of the stages' topics when none of its partitions has new
# messages. Faust fixes it at 1.5 s, and aiokafka has one fetch per broker in flight: live, a
# partition left out of it waited for it to come back, so each stage added up to 1.5 s to an
# event's way to the wallboard (median 2.2 s at 1,000 events/s on a 2-core machine; 0.8 s with
# 100 ms). Catching up a backlog, the long wait made larger batches, which cost less per event
# (a backlog was read ~20% faster), so the worker switches: CATCH_UP_FETCH_WAIT_MS while a
# stage is more than CATCH_UP_MESSAGES behind, FETCH_MAX_WAIT_MS otherwise.
FETCH_MAX_WAIT_MS = 100
CATCH_UP_FETCH_WAIT_MS = 1500
CATCH_UP_MESSAGES = 20_000


class StageConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, starting with the live fetch wait (``FETCH_MAX_WAIT_MS``;
    ``GatedConsumer.catching_up`` switches it)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when it starts the consumer's fetcher (Faust passes no setting for it)
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError("this aiokafka version keeps no _fetch_max_wait_ms: pin the one in pyproject.toml")
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class ReadOffsets(dict[TP, int | None]):
    """Faust's last offset read per partition (it drops a message below it), which a re-read
    must not let rise too early. Faust delivers a fetched batch to the end, so after the seek of
    a re-read the rest of the batch in hand (offsets past the hole) still comes and would raise
    the floor above the hole again: the re-read's messages were then dropped and the hole never
    filled (a stage stalled until the watchdog restarted the worker). While a re-read waits to
    begin, the offsets Faust records are only followed; the first one that goes back (or reaches
    the re-read's start) is the re-read: from there Faust's floor works as before."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[TP, tuple[int, int]] = {}  # tp -> (re-read start, last offset delivered)

    def __missing__(self, tp: TP) -> None:
        return None

    def read_again(self, tp: TP, start: int) -> None:
        self.waiting[tp] = (start, start)
        super().__setitem__(tp, None)

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        waiting = self.waiting.get(tp)
        if waiting is not None and offset is not None:
            start, last = waiting
            if offset > start and offset > last:  # still the batch fetched before the seek
                self.waiting[tp] = (start, offset)
                return
            del self.waiting[tp]  # offsets went back: the re-read has begun
        super().__setitem__(tp, offset)


class GatedConsumer(AIOKafkaConsumer):
    """Commits up to the first unfinished offset of each partition (``gate``, set by ``gated``)."""

    gate: CommitGate
    _read_offset: ReadOffsets

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ReadOffsets()

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return StageConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def catching_up(self, behind: int) -> int:
        """Set the fetch wait for a stage ``behind`` messages (``CATCH_UP_MESSAGES``); returns it."""
        wait = CATCH_UP_FETCH_WAIT_MS if behind > CATCH_UP_MESSAGES else FETCH_MAX_WAIT_MS
        consumer = self._thread._consumer  # None until the thread starts it; its fetcher, until started
        if consumer is not None and consumer._fetcher is not None:  # the next fetch request uses it
            consumer._fetcher._fetch_max_wait_ms = wait
        return wait

    async def perform_seek(self) -> None:
        # Faust seeks every assigned partition to its committed offset before it lets messages
        # of a new assignment flow: the gate's account of this generation starts there.
        self._read_offset.waiting.clear()  # every partition starts again from its commit
        await super().perform_seek()
        starts = {tp: self._read_offset.get(tp) for tp in self.assignment()}
        self.gate.assign(self.app.consumer_generation_id, starts, time.monotonic())
        log.info("commits: generation %s, %d partitions from their committed offsets",
                 self.app.consumer_generation_id, len(starts))  # fmt: skip

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.gate.revoked(revoked)
        for tp in revoked:
            self._read_offset.waiting.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def read_again(self, tp: TP, offset: int, why: str = "a hole in delivery") -> None:
        """Have ``tp`` delivered again from ``offset`` (what was delivered already comes twice)."""
        log.warning(
            "%s[%d]: offsets from %d on did not reach the agents (%s); reading the partition again "
            "from there (what comes twice is applied once)", tp.topic, tp.partition, offset, why,
        )  # fmt: skip
        # Faust drops a message below the last offset it read: not the re-read's (see ReadOffsets)
        self._read_offset.read_again(tp, offset)
        # Faust's own ``seek`` touches aiokafka's fetcher from this thread while the consumer
        # thread may be draining it (a KeyError in ``fetched_records`` crashed a restarted
        # worker): seek on the consumer's own thread instead.
        thread = self._thread
        await thread.call_thread(thread.seek, tp, offset)  # type: ignore[arg-type]  # a plain call is fine

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        return (tp for tp in list(self.gate.partitions) if topics is None or tp in topics or tp.topic in topics)

    def _new_offset(self, tp: TP) -> int | None:
        with ack_lock:  # Faust's own acknowledgements are not used for commits: drop them
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
        offset, given_up = self.gate.committable(tp)
        for lo, hi in given_up:
            log.warning(
                "offsets %d..%d of %s[%d] were never delivered (a transaction marker, records "
                "removed by retention, or messages the consumer dropped); committing past them",
                lo, hi - 1, tp.topic, tp.partition,
            )  # fmt: skip
        return offset


def gated(gate: CommitGate) -> type[GatedConsumer]:
    """The consumer class for one app, bound to its gate."""
    return type("GatedConsumer", (GatedConsumer,), {"gate": gate})
