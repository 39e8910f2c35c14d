"""Changelog records in bulk: one Kafka record batch per changelog partition instead of a send
per key.

The stages (``pipeline/ingest.py``, ``pipeline/issues_stage.py``, ``pipeline/board_stage.py``)
write what a processed batch changed with :func:`send_records` and await delivery before the
batch's offsets are committed. Keys are JSON as Faust's table serializer wrote them
(:func:`changelog_key`), so the records Faust's tables left before December 2026 restore as they
are (``tests/unit/test_changelog.py``); log compaction keeps the latest record per key. Within a
partition, writes keep the order they were made in (aiokafka keeps one batch in flight per
partition), and a batch of records is appended to the log whole: a crash keeps a prefix of a
batch's writes, never a hole.

Each record of the contacts and issues passes carries its owner's epoch (header ``ccpulse-epoch``,
:data:`EPOCH_HEADER`): a new owner's epoch is greater than every earlier owner's, and its first
record (the progress record that keeps the epoch) is acknowledged before anything else it sends.
So a record of a smaller epoch after a greater one in a partition was sent by an earlier owner
after the new one took over: a worker frozen past its group session whose Kafka client still held
records when it froze, and sent them when it ran again (docs/operations.md, "A worker frozen past
its group session"). A restore skips such records (:class:`OwnerEpochs`) and the owner writes its
own value of each such key again, so that the latest record per key, which log compaction keeps,
is the owner's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.core.json_bytes import json_bytes

log = logging.getLogger("ccpulse.changelog")

# Bytes per record batch. Faust's producer default (16 KiB) would split a batch of table writes
# into dozens of requests; the broker accepts up to 1 MiB per batch by default.
RECORD_BATCH_BYTES = 512 * 1024
EPOCH_HEADER = "ccpulse-epoch"


def record_epoch(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    """The epoch of the owner that wrote a changelog record; None: a record without one (written
    before December 2026, or by a stage that keeps no epochs)."""
    for name, value in headers or ():
        if name == EPOCH_HEADER:
            return int(value)
    return None


class OwnerEpochs:
    """Reading changelog partitions in log order: which records an earlier owner sent after a later
    one had taken the partition over (the module's docstring)."""

    def __init__(self) -> None:
        self.newest: dict[Any, int] = {}  # partition -> the greatest epoch read in it so far

    def late(self, partition: Any, headers: Iterable[tuple[str, bytes]] | None) -> bool:
        epoch = record_epoch(headers)
        if epoch is None:
            return False
        if epoch < self.newest.get(partition, epoch):
            return True
        self.newest[partition] = epoch
        return False


class LateKeys(dict[int, set[bytes]]):
    """Per partition, the keys of the records :class:`OwnerEpochs` found late (``StageRunner.read_whole``'s
    ``late``)."""

    def __call__(self, tp: Any, key: bytes | None) -> None:
        self.setdefault(tp.partition, set()).add(key or b"")

    def write_again(self, passes: Mapping[int, Any], stage: str) -> None:
        """Each pass restored writes those keys again at its take-over (its ``write_again``)."""
        for partition, keys in self.items():
            passes[partition].write_again(keys)
            log.warning("%s partition %d: %d changelog records were sent by an earlier owner after a later one "
                        "took the partition over (a worker frozen past its group session): not restored, and "
                        "their keys are written again as restored", stage, partition, len(keys))  # fmt: skip


def changelog_key(key: str | int) -> bytes:
    """A table key as Faust's JSON key serializer writes it (checked against Faust in the tests)."""
    return json_bytes(key)


async def send_records(producer: Any, topic: str, partition: int, records: dict[bytes, bytes | None],
                       epoch: int | None = None) -> list[asyncio.Future[Any]]:  # fmt: skip
    """Send ``records`` (key -> value; None: a tombstone) to one partition as record batches (as
    few as fit), in order, each with the writer's ``epoch`` when given; returns the deliveries to
    await. ``producer``: an AIOKafkaProducer."""
    deliveries: list[asyncio.Future[Any]] = []
    headers = [] if epoch is None else [(EPOCH_HEADER, str(epoch).encode())]
    batch, count = producer.create_batch(), 0
    for key, value in records.items():
        if count and batch.append(key=key, value=value, timestamp=None, headers=headers) is not None:
            count += 1
            continue
        if count:  # full: send it and start the next one
            batch.close()
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            raise ValueError(f"a {len(value or b'')}-byte record does not fit in a record batch")
        count = 1
    if count:
        batch.close()
        deliveries.append(await producer.send_batch(batch, topic, partition=partition))
    return deliveries


def _destination(table: Any, key: str | int) -> tuple[str, int]:
    return table.changelog_topic.get_topic_name(), table.partition_for_key(key)
