"""``ccpulse follow --from FORMAT --input-topic TOPIC``: a platform's events, delivered to a Kafka
topic by a connector (Kinesis, EventBridge, Event Streams, a syslog shipper), converted into
contract events on the input topic.

    vendor topic ──poll──▶ converter ──events──▶ input topic (acknowledged)
         ▲                      └─ unreadable ──▶ dead-letter topic (original bytes)
         └──── offsets committed, records journalled, after the acknowledgement

Exactly once in effect: a batch's records are appended to the journal (the converter's state,
pipeline.sources.journal) and their offsets committed only after every event they gave is
acknowledged. A restart rebuilds the converter from the journal and goes on after the last offset
taken per partition; a crash between the acknowledgement and the journal sends a batch's events
again, with the same ids (counted once). The consumer takes every partition of the vendor topic
itself (no group sharing): a platform's events about one contact must be read in order, and one
bridge per vendor topic reads them all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition  # type: ignore[attr-defined]
from kafka.structs import OffsetAndMetadata

from pipeline.dead_letters import HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC
from pipeline.sources import Summary
from pipeline.sources.follow import Sender, send_outcome
from pipeline.sources.journal import Journal, Stateful

log = logging.getLogger("ccpulse.follow")
POLL_MS = 500
BATCH_RECORDS = 2_000


class BridgeFailed(RuntimeError):
    """The broker did not acknowledge a batch's events: stop, and start again from the journal."""


class Bridge:
    def __init__(self, consumer: KafkaConsumer, topic: str, converter: Stateful, sender: Sender, dlq_topic: str,
                 journal: Journal) -> None:  # fmt: skip
        self.consumer, self.topic, self.converter, self.sender = consumer, topic, converter, sender
        self.dlq_topic, self.journal = dlq_topic, journal
        self.summary = Summary()

    def run(self, stopping: Callable[[], bool]) -> None:
        taken = self.journal.restore(self.converter)
        partitions = [TopicPartition(self.topic, p) for p in sorted(self.consumer.partitions_for_topic(self.topic))]
        self.consumer.assign(partitions)
        for tp in partitions:
            if tp.partition in taken:
                self.consumer.seek(tp, taken[tp.partition] + 1)
        if taken:
            log.info("resumed after %s", ", ".join(f"partition {p} offset {o}" for p, o in sorted(taken.items())))
        while not stopping():
            batch = self.consumer.poll(timeout_ms=POLL_MS, max_records=BATCH_RECORDS)
            if batch:
                self._take(batch)

    def _take(self, batch: dict[TopicPartition, list[Any]]) -> None:
        done: list[tuple[str, int | None, int | None]] = []
        ends: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, messages in batch.items():
            for message in messages:
                text = bytes(message.value or b"").decode("utf-8", "replace")
                self._convert(text, message)
                done.append((text, tp.partition, message.offset))
                ends[tp] = OffsetAndMetadata(message.offset + 1, None, -1)
        report = self.sender.settle()
        if report.failed:
            raise BridgeFailed(f"{report.failed} messages were not acknowledged by the broker; started again, "
                               "the bridge goes on after the last batch that was")  # fmt: skip
        self.journal.append(done, self.converter)
        self.consumer.commit(ends)

    def _convert(self, text: str, message: Any) -> None:
        outcome = self.converter.line(text)
        self.summary.add(outcome)
        send_outcome(self.sender, outcome, bytes(message.value or b""), self.dlq_topic, [
            (HEADER_TOPIC, self.topic.encode()), (HEADER_PARTITION, str(message.partition).encode()),
            (HEADER_OFFSET, str(message.offset).encode()),
        ])  # fmt: skip


def consumer_for(options: dict[str, Any], group: str) -> KafkaConsumer:
    """A consumer that commits only what the bridge says, from the earliest record of a new topic."""
    return KafkaConsumer(group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                         client_id="ccpulse-follow", **options)  # fmt: skip


def journal_for(data_dir: Path, source_format: str, topic: str) -> Journal:
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"bridge-{source_format}-{topic}")
    return Journal(data_dir / "sources", name)
