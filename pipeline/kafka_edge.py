"""Every private part of faust and aiokafka that ccpulse touches, in this one module.

Each has no public equivalent in the versions checked (``CHECKED``); ``tests/unit/test_kafka_edge.py``
builds the libraries' real objects and fails when a name used here is gone or changed its kind;
``tests/integration/test_kafka_clients.py`` runs the metadata watch's two uses against a real broker.
No other module of ``pipeline/`` may name a private attribute of either library.

Each use, what it reads or does, and why there is no public way:

- :func:`aiokafka_producer`: ``faust Producer._ensure_producer()``. Faust has no accessor for its
  aiokafka producer; the stages send with explicit partitions and headers.
- :func:`started_producer`: ``faust Producer._producer`` (read): the same producer without
  starting it (the watches look, never start).
- :func:`consumer_client`: ``AIOKafkaConsumer._client`` (read): the input consumer's client, for
  the metadata watch.
- :func:`committed_with_metadata`: ``AIOKafkaConsumer._coordinator.fetch_committed_offsets``.
  ``committed()`` returns offsets without their metadata (the ingest stage's counts).
- :func:`waiting_metadata_requests`: ``AIOKafkaClient._conns``, ``AIOKafkaConnection._requests``
  (read). A request's age is not exposed; the watch closes its connection by the public ``close()``.
- :func:`idle_metadata_update`, :func:`wake_metadata_task`: ``AIOKafkaClient._md_update_fut``
  (read), ``_md_update_waiter`` (its result set): the only way out of aiokafka's sleeping
  metadata task (``pipeline/kafka_watch.py``).
- :func:`producer_backlog`: ``AIOKafkaProducer._message_accumulator`` (``_batches``,
  ``_pending_batches``, a batch's ``_ctime``) and ``_sender`` (``_in_flight``,
  ``_muted_partitions``) (read): what waits to be sent, for the stall report only.

Only :func:`wake_metadata_task` changes what a library does (and :func:`waiting_metadata_requests`
hands out connections the watch closes): both are the watch's answer to an aiokafka fault, written
up in ``pipeline/kafka_watch.py``. The rest only read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

CHECKED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}  # read against these; pyproject.toml allows a range


def aiokafka_producer(app: Any) -> Any:
    """Faust's own aiokafka producer (acks=all, started with the app). Faust has no public accessor;
    the ingest stage needs aiokafka's ``send``/``send_batch`` with explicit partitions and headers."""
    return app.producer._ensure_producer()


def started_producer(app: Any) -> Any | None:
    """Faust's aiokafka producer once it exists (None before): for looking at it, never starting it."""
    return getattr(app.producer, "_producer", None)


def consumer_client(consumer: Any) -> Any:
    """An aiokafka consumer's client (its connections and metadata)."""
    return consumer._client


async def committed_with_metadata(consumer: Any, tps: Iterable[TopicPartition]) -> dict[TopicPartition, Any]:
    """The committed offsets **with their metadata** (the ingest stage's counts): aiokafka's public
    ``committed()`` returns the offset only."""
    found: dict[TopicPartition, OffsetAndMetadata] = await consumer._coordinator.fetch_committed_offsets(list(tps))
    return found


def waiting_metadata_requests(client: Any) -> Iterator[tuple[Any, Any, int]]:
    """(broker node, connection, correlation id) of each metadata request of ``client`` that waits
    for its answer."""
    for node, connection in list(client._conns.items()):
        for correlation_id, request, answer in list(connection._requests):
            if request is not None and not answer.done() and type(request).__name__.startswith("MetadataRequest"):
                yield node, connection, correlation_id


def idle_metadata_update(client: Any) -> Any | None:
    """The metadata update ``client``'s sends wait for, when its metadata task sleeps (nothing asked
    the broker); None when there is none, or the task is awake."""
    update, wake = client._md_update_fut, client._md_update_waiter
    if update is None or update.done() or wake.done():
        return None
    return update


def wake_metadata_task(client: Any) -> None:
    """Wake ``client``'s sleeping metadata task: it asks the broker, and answers the update."""
    client._md_update_waiter.set_result(None)


def producer_backlog(producer: Any) -> dict[str, Any]:
    """What an aiokafka producer has not sent or has not had acknowledged, per partition (read only)."""
    accumulator, sender = producer._message_accumulator, producer._sender
    now = time.monotonic()
    return {
        "queued": {
            f"{tp.topic}/{tp.partition}": [len(batches), round(now - batches[0]._ctime, 1)]
            for tp, batches in accumulator._batches.items()
            if batches
        },  # fmt: skip
        "awaiting_acks": sorted(f"{b.tp.topic}/{b.tp.partition}" for b in accumulator._pending_batches),
        "nodes_in_flight": sorted(sender._in_flight),
        "muted": sorted(f"{tp.topic}/{tp.partition}" for tp in sender._muted_partitions),
    }
