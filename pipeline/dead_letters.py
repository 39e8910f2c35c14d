"""The dead-letter record: the original bytes unchanged, and headers that say why and where from.

A dead letter must fit in the dead-letter topic (and in its producer's largest request), or its
send fails — for the worker, every time the message is read again: a partition stuck behind one
message. The dead-letter topic takes up to 2 MiB (``pipeline.kafka_io.DEAD_LETTER_TOPIC_BYTES``),
twice what Kafka's topics take by default, so every message read from an input topic of Kafka's
defaults goes there unchanged; one that does not fit (an input topic set to take larger
messages) keeps its first bytes and says how long it was (:func:`fitted`).

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
HEADER_TRUNCATED = "error.truncated"  # the original's length in bytes, when only its first bytes are there
HEADROOM = 64 * 1024  # what a dead letter's key, headers and record framing may add to its value


def fitted(
    value: bytes | None, fields: list[tuple[str, bytes]], limit: int
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """A dead letter's value and headers as sent where a message takes at most ``limit`` bytes:
    the original bytes unchanged if they fit with room for the rest, else their first bytes and
    the header ``error.truncated`` with the original's length (the source headers say where the
    whole message is)."""
    room = limit - HEADROOM
    if value is None or len(value) <= room:
        return value, fields
    return value[:room], [*fields, (HEADER_TRUNCATED, str(len(value)).encode())]


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
