"""Unanswered metadata requests: the connection is closed so that the client asks again.

A Kafka client asks the broker for metadata (which broker leads each partition) before it can
send to a partition. aiokafka waits for the answer as long as the client's request timeout:
for Faust's producer that is 20 minutes (``producer_request_timeout``), so one lost answer leaves
every send of the worker queued that long — seen on a freshly started broker while the worker
created its topics: batches queued for every stage, nothing in flight, the producer's metadata
request unanswered after 35 s, until the stall watchdog stopped the worker. A broker answers a
metadata request in milliseconds; :class:`MetadataWatch` closes a connection whose metadata
request has had no answer for ``limit`` seconds. aiokafka then fails that request, tries again
on a new connection, and the queued batches go out.

Closing a connection is safe for the pipeline: a produce request on it fails and is sent again
(at-least-once; every step applies a repeated message once), a fetch is made again.

The same check starts a metadata update that sends wait for while aiokafka's metadata task sleeps
(``_wake_idle_updates``), the second way to the same stall.

aiokafka's internals (a client's connections and their requests waiting for an answer, its
metadata task) are reached through ``pipeline/kafka_edge.py``, the one module that names them;
``tests/integration/test_kafka_clients.py`` checks the watch against a real broker.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaTimeoutError

from pipeline.kafka_edge import idle_metadata_update, waiting_metadata_requests, wake_metadata_task

log = logging.getLogger("ccpulse.worker")
METADATA_ANSWER_SECONDS = 15.0
CHECK_SECONDS = 5.0


class MetadataWatch:
    """Watches the connections of aiokafka clients (call :meth:`check` every few seconds)."""

    def __init__(self, limit: float = METADATA_ANSWER_SECONDS) -> None:
        self.limit = limit
        self._since: dict[tuple[int, int], float] = {}  # (connection, correlation id) -> first seen waiting
        self._update_since: dict[int, float] = {}  # id of a client's pending metadata update -> first seen

    def check(self, clients: dict[str, Any]) -> list[str]:
        """Close each connection whose metadata request has waited ``limit`` seconds, and start each
        metadata update that has waited as long with nothing asked; what was done, one line each."""
        now = time.monotonic()
        waiting: dict[tuple[int, int], float] = {}
        closed: list[str] = []
        for name, client in clients.items():
            if client is None:
                continue
            shut: set[int] = set()  # connections closed this round: their other requests fail with them
            for node, connection, correlation_id in waiting_metadata_requests(client):
                if id(connection) in shut:
                    continue
                key = (id(connection), correlation_id)
                since = waiting[key] = self._since.get(key, now)
                if now - since >= self.limit:
                    log.warning(
                        "Kafka: the %s's metadata request to broker %s has had no answer for %.0f s; closing "
                        "that connection so that it asks again (sends wait for the answer)",
                        name, node[0] if isinstance(node, tuple) else node, now - since,
                    )  # fmt: skip
                    connection.close(
                        reason=CloseReason.CONNECTION_TIMEOUT,
                        exc=KafkaTimeoutError(f"metadata request unanswered for {now - since:.0f} s"),
                    )
                    closed.append(f"{name}: broker {node}")
                    shut.add(id(connection))
        self._since = waiting  # answered or closed: forgotten
        closed += self._wake_idle_updates(clients, now)
        return closed

    def _wake_idle_updates(self, clients: dict[str, Any], now: float) -> list[str]:
        """A metadata update that sends wait for, pending ``limit`` seconds while the client's
        metadata task sleeps (nothing asked the broker): wake the task. aiokafka's task sleeps
        without answering the update when the topic list changed during a round it began on its
        own schedule (5 minutes for the producer); seen as a worker whose every send waited, with
        no request in flight, on a fresh broker (2026-12-01)."""
        pending: dict[int, float] = {}
        woken: list[str] = []
        for name, client in clients.items():
            if client is None:
                continue
            update = idle_metadata_update(client)
            if update is None:
                continue
            since = pending[id(update)] = self._update_since.get(id(update), now)
            if now - since >= self.limit:
                log.warning(
                    "Kafka: the %s's metadata update has waited %.0f s without a request to the broker; "
                    "starting it (sends wait for it)", name, now - since,
                )  # fmt: skip
                wake_metadata_task(client)
                woken.append(f"{name}: metadata update")
        self._update_since = pending
        return woken
