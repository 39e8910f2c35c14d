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
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline.core.json_bytes import json_bytes

log = logging.getLogger("ccpulse.changelog")

# Bytes per record batch. Faust's producer default (16 KiB) would split a batch of table writes
# into dozens of requests; the broker accepts up to 1 MiB per batch by default.
RECORD_BATCH_BYTES = 512 * 1024


def changelog_key(key: str | int) -> bytes:
    """A table key as Faust's JSON key serializer writes it (checked against Faust in the tests)."""
    return json_bytes(key)


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
