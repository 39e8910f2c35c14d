"""Table writes in bulk: one Kafka record batch per changelog partition instead of a send per key.

Faust sends a table's changelog record for every ``table[key] = value`` through its own
per-message path (a ``FutureMessage``, its producer buffer, an aiokafka future each); with
three or four writes per contact event that path cost more than the metrics themselves. A
:class:`ChangelogWrites` collects the writes of one processed batch, applies them to the tables'
in-memory stores at once and sends them as record batches, awaiting delivery before the batch
counts as processed (its events are acknowledged, and their offsets committed, only after).

The records are exactly what Faust itself would have written (same topic, partition, key and
value bytes: ``tests/unit/test_changelog.py``), so Faust's own recovery restores the tables, and
log compaction keeps the latest record per key. Within a partition, writes keep the order they
were made in (aiokafka keeps one batch in flight per partition), and a batch of records is
appended to the log whole: a crash keeps a prefix of a batch's writes, never a hole.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from pipeline.core.json_bytes import json_bytes
from pipeline.kafka_edge import aiokafka_producer

log = logging.getLogger("ccpulse.changelog")

# Bytes per record batch. Faust's producer default (16 KiB) would split a batch of table writes
# into dozens of requests; the broker accepts up to 1 MiB per batch by default.
RECORD_BATCH_BYTES = 512 * 1024


def changelog_key(key: str | int) -> bytes:
    """A table key as Faust's JSON key serializer writes it (checked against Faust in the tests)."""
    return json_bytes(key)


class ChangelogWrites:
    """The table writes of one batch: ``put``/``delete`` as many as needed, then ``await send()``.

    ``generation``: the consumer generation the batch's messages came in. Once a table has been
    recovered for a later one (a rebalance), the batch writes nothing more — neither to the table
    nor to its changelog: its messages are delivered again in the new generation, and a late write
    would land over the new generation's (``KeyedTable.on_rebalance``)."""

    def __init__(self, app: Any, generation: int | None = None) -> None:
        self.app = app
        self.generation = generation
        self._records: dict[tuple[str, int], dict[bytes, bytes | None]] = defaultdict(dict)
        self._tables: list[Any] = []

    def stale(self) -> bool:
        """The batch began in a generation older than one of its tables'."""
        return self.generation is not None and any(
            table.generation is not None and table.generation > self.generation for table in self._tables
        )

    def put(self, table: Any, key: str | int, value: bytes) -> None:
        self._follow(table)
        if not self.stale():
            table.data[key] = value
        self._records[_destination(table, key)][changelog_key(key)] = value

    def delete(self, table: Any, key: str | int) -> None:
        self._follow(table)
        if not self.stale():
            table.data.pop(key, None)
        self._records[_destination(table, key)][changelog_key(key)] = None

    def _follow(self, table: Any) -> None:
        if all(known is not table for known in self._tables):
            self._tables.append(table)

    async def send(self) -> None:
        """Send every write, one record batch per partition (more when one is full), and wait until
        the broker has them all. Later writes to a key within the batch replace earlier ones."""
        if self.stale():
            log.info("a batch of generation %s wrote nothing: its tables were recovered for a later one",
                     self.generation)  # fmt: skip
            self._records.clear()
        if not self._records:
            return
        producer = aiokafka_producer(self.app)
        deliveries: list[asyncio.Future[Any]] = []
        for (topic, partition), records in self._records.items():
            deliveries += await send_records(producer, topic, partition, records)
        self._records.clear()
        await asyncio.gather(*deliveries)


async def send_records(producer: Any, topic: str, partition: int,
                       records: dict[bytes, bytes | None]) -> list[asyncio.Future[Any]]:  # fmt: skip
    """Send ``records`` (key -> value; None: a tombstone) to one partition as record batches (as
    few as fit), in order; returns the deliveries to await. ``producer``: an AIOKafkaProducer."""
    deliveries: list[asyncio.Future[Any]] = []
    batch, count = producer.create_batch(), 0
    for key, value in records.items():
        if count and batch.append(key=key, value=value, timestamp=None) is not None:
            count += 1
            continue
        if count:  # full: send it and start the next one
            batch.close()
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            raise ValueError(f"a {len(value or b'')}-byte record does not fit in a record batch")
        count = 1
    if count:
        batch.close()
        deliveries.append(await producer.send_batch(batch, topic, partition=partition))
    return deliveries


def _destination(table: Any, key: str | int) -> tuple[str, int]:
    return table.changelog_topic.get_topic_name(), table.partition_for_key(key)
