"""The private parts of faust and aiokafka the ingest stage relies on, in one place.

Each has no public equivalent in the versions checked (``CHECKED``); ``tests/unit/test_kafka_edge.py``
fails when a library changes under them. Nothing here changes a library's behaviour: both only
read or hand over what the library already has.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

CHECKED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}  # read against these; pyproject.toml allows a range


def aiokafka_producer(app: Any) -> Any:
    """Faust's own aiokafka producer (acks=all, started with the app). Faust has no public accessor;
    the ingest stage needs aiokafka's ``send``/``send_batch`` with explicit partitions and headers."""
    return app.producer._ensure_producer()


async def committed_with_metadata(consumer: Any, tps: Iterable[TopicPartition]) -> dict[TopicPartition, Any]:
    """The committed offsets **with their metadata** (the ingest stage's counts): aiokafka's public
    ``committed()`` returns the offset only."""
    found: dict[TopicPartition, OffsetAndMetadata] = await consumer._coordinator.fetch_committed_offsets(list(tps))
    return found
