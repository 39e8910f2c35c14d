"""The worker's topology, built in one place: topics, tables, agents and web views.

Agents are thin: decode, call the core, write state, hand on. Delivery is at-least-once and
every state change is idempotent (per-partition progress records the next source offset it has
not applied), because Faust's exactly-once mode has open bugs and offsets are committed only
every few seconds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import faust
import orjson
from faust.types import EventT
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pipeline import dead_letters
from pipeline.core.contract import check
from pipeline.core.progress import PartitionProgress, total
from pipeline.exposition import PipelineHealthCollector
from pipeline.settings import Settings

log = logging.getLogger("ccpulse.worker")


class SourcePartitionTable(faust.Table):
    """A table keyed by the input topic's partition number.

    Faust puts a table write into the changelog partition of the event being processed; a
    batch mixes partitions, so the key itself names the partition here. That keeps each
    partition's record with the worker that owns the partition, and restores it there.
    """

    def partition_for_key(self, key: Any) -> int | None:
        return int(key)


def faust_app(settings: Settings) -> faust.App:
    security = settings.kafka_security
    credentials: faust.SASLCredentials | faust.SSLCredentials | None = None
    if security.sasl_mechanism:
        credentials = faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password.reveal() if security.sasl_password else None,
            mechanism=security.sasl_mechanism,
            ssl_context=_ssl_context(settings) if security.protocol == "SASL_SSL" else None,
        )
    elif security.protocol == "SSL":
        credentials = faust.SSLCredentials(_ssl_context(settings))
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{address}" for address in settings.kafka_bootstrap.split(",")],
        broker_credentials=credentials,
        store="memory://",
        datadir=str((settings.data_dir / "faust").resolve()),
        web_enabled=True,
        web_bind=settings.http_host,
        web_host=settings.http_host,
        web_port=settings.http_port,
        web_in_thread=False,
        topic_partitions=settings.partitions,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        stream_wait_empty=False,
    )


def _ssl_context(settings: Settings) -> Any:
    import ssl

    security = settings.kafka_security
    context = ssl.create_default_context(cafile=security.ssl_cafile)
    if security.ssl_certfile:
        context.load_cert_chain(security.ssl_certfile, security.ssl_keyfile)
    return context


def by_partition(batch: Sequence[EventT]) -> Iterable[tuple[int, list[EventT]]]:
    groups: dict[int, list[EventT]] = defaultdict(list)
    for event in batch:
        groups[event.message.partition].append(event)
    return groups.items()


def _milliseconds(event: EventT) -> int | None:
    stamp = event.message.timestamp
    return int(stamp * 1000) if stamp else None


def build(settings: Settings, registry: CollectorRegistry | None = None) -> faust.App:
    """Assemble the worker: the input topic, the state tables, the agents and the web views."""
    app = faust_app(settings)
    registry = registry or CollectorRegistry()

    source = app.topic(
        settings.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    dead_letter_topic = app.topic(
        settings.dlq_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    progress_table: faust.Table = app.tables.add(  # type: ignore[assignment]
        SourcePartitionTable(
            app,
            name="progress",
            default=None,
            beacon=app.tables.beacon,
            key_type=int,  # type: ignore[arg-type]  # faust serialises int keys as JSON
            partitions=settings.partitions,
            help="Per input partition: the next offset to apply and what was counted.",
        )
    )

    def owned_partitions() -> list[int]:
        return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.topic)

    def snapshot() -> PartitionProgress:
        return total([PartitionProgress.from_json(progress_table.get(p)) for p in owned_partitions()])

    registry.register(PipelineHealthCollector(snapshot, lambda: len(owned_partitions())))

    @app.agent(source, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        batches = stream.take_events(settings.batch_size, within=settings.batch_seconds)  # type: ignore[attr-defined]
        async for batch in batches:
            for partition, events in by_partition(batch):
                progress = PartitionProgress.from_json(progress_table.get(partition))
                for event in events:
                    offset = event.message.offset
                    if not progress.is_new(offset):
                        continue  # a replay after a crash: already applied
                    raw = event.message.value  # None for a tombstone: dead-lettered as invalid_json
                    try:
                        verdict = check(raw if raw is not None else b"")
                        reason, detail = verdict.reason, verdict.detail
                        if verdict.event is not None:
                            progress.events_by_type[verdict.event.type] += 1
                    except Exception as problem:  # noqa: BLE001 - one bad event must not stop the stream
                        log.exception("event at %s/%d/%d failed", settings.topic, partition, offset)
                        reason, detail = "internal_error", f"{type(problem).__name__}: {problem}"
                    if reason is not None:
                        progress.invalid_by_reason[reason] += 1
                        await dead_letter_topic.send(
                            key=event.message.key,
                            value=raw,
                            headers=dead_letters.headers(
                                reason, detail, settings.topic, partition, offset, _milliseconds(event)
                            ),
                        )
                    progress.applied(offset)
                progress_table[partition] = progress.to_json()

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        progress = snapshot()
        return web.bytes(
            orjson.dumps(
                {
                    "app": settings.app_id,
                    "topic": settings.topic,
                    "owned_partitions": owned_partitions(),
                    "events_by_type": dict(progress.events_by_type),
                    "invalid_by_reason": dict(progress.invalid_by_reason),
                }
            ),
            content_type="application/json",
        )

    return app
