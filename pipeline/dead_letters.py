"""The dead-letter record: the original bytes unchanged, and headers that say why and where from.

Delivery is at-least-once: a worker killed after sending a dead letter but before recording
its progress sends it again after the restart. ``source.topic``/``source.partition``/
``source.offset`` identify the original message, so a consumer of the dead-letter topic can
drop repeats by that triple.
"""

from __future__ import annotations

HEADER_REASON = "error.reason"
HEADER_DETAIL = "error.detail"
HEADER_TOPIC = "source.topic"
HEADER_PARTITION = "source.partition"
HEADER_OFFSET = "source.offset"
HEADER_TIMESTAMP = "source.timestamp"  # the source message's Kafka timestamp, ms since the epoch


def headers(
    reason: str, detail: str, topic: str, partition: int, offset: int, timestamp_ms: int | None
) -> list[tuple[str, bytes]]:
    fields = [
        (HEADER_REASON, reason.encode()),
        (HEADER_DETAIL, detail.encode("utf-8", errors="replace")[:1000]),
        (HEADER_TOPIC, topic.encode()),
        (HEADER_PARTITION, str(partition).encode()),
        (HEADER_OFFSET, str(offset).encode()),
    ]
    if timestamp_ms is not None:
        fields.append((HEADER_TIMESTAMP, str(timestamp_ms).encode()))
    return fields
