"""What the ingest stage makes of one input partition's records: pure, no I/O.

The ingest stage reads the input topic with its own consumer, in order, partition by partition
(``pipeline/ingest.py``). For each record it decides: valid → an ``events`` row and an event for
the contacts pass of the partition that owns its contact (or agent); invalid → a dead letter with
its reason. It counts what it saw in the partition's :class:`PartitionProgress`, which is
committed together with the offset (as the offset's metadata), so a replay after a crash starts
from counts that match its offset exactly: nothing counted twice, nothing missed.

Who owns a contact: the input partition its events land on when producers key them by
``contact_id`` (``agent_id``), as ``ccpulse produce`` does. So a record whose key is its owner
key is owned where it is (a byte comparison per event). A record keyed otherwise belongs to
the partition Kafka's default partitioner gives its owner key (murmur2); if that is another
partition it is re-routed: produced once more to the input topic, on that partition, keyed by
its owner key, with the header ``ccpulse.source`` (the original's ``<partition>:<offset>``). The
copy is not counted or stored again; only the contacts pass of its owner applies it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from kafka.partitioner.default import murmur2

from pipeline import dead_letters
from pipeline.core.contract import Event, check
from pipeline.core.facts import Row, event_row
from pipeline.core.privacy import Pseudonyms
from pipeline.core.progress import PartitionProgress
from pipeline.core.wire import Routed

log = logging.getLogger("ccpulse.ingest")

# Kafka keeps at most offset.metadata.max.bytes (4096 by default) of metadata per committed offset.
COMMIT_METADATA_BYTES = 4096


REROUTED_HEADER = "ccpulse.source"  # on a re-routed copy: the original's "<partition>:<offset>"


class InputRecord(Protocol):
    """A record of the input topic, as aiokafka's ConsumerRecord has it."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms since the epoch (Kafka's record timestamp)
    headers: Sequence[tuple[str, bytes]]


@dataclass
class Reroute:
    """A valid event keyed otherwise, to be produced again on its owner's input partition."""

    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class Intake:
    """What a batch of input records gives: messages to send, rows to write, and any gap."""

    # per input partition: (offset, event) for its contacts pass, in offset order
    local: dict[int, list[tuple[int, Routed]]] = field(default_factory=lambda: defaultdict(list))
    reroutes: list[Reroute] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)  # the events table
    gaps: list[tuple[int, int, int]] = field(default_factory=list)  # (partition, first, last) never in the log


def take(
    progress: PartitionProgress,
    topic: str,
    partition: int,
    records: Iterable[InputRecord],
    pseudonyms: Pseudonyms,
    partitions: int,
    intake: Intake,
) -> None:
    """Apply one partition's records (in offset order) to ``progress`` and add their output to
    ``intake``; ``partitions``: the input topic's. A record below the progress's next offset was
    applied already: it is passed on and written again (both idempotent) but not counted again."""
    for record in records:
        offset = record.offset
        new = offset >= progress.offsets.next_offset
        if offset > progress.offsets.next_offset:
            # the consumer reads the log in order: an offset skipped is not in the log (a
            # transaction marker, or deleted by retention before this worker read it)
            intake.gaps.append((partition, progress.offsets.next_offset, offset - 1))
        raw = record.value  # None for a tombstone: dead-lettered as invalid_json
        try:
            verdict = check(raw if raw is not None else b"")
            reason, detail = verdict.reason, verdict.detail
            valid = verdict.event
            if valid is not None:
                _valid(progress, partition, record, valid, raw or b"", new, pseudonyms, partitions, intake)
        except Exception as problem:  # noqa: BLE001 - one bad event must not stop the stream
            log.exception("event at %s/%d/%d failed", topic, partition, offset)
            reason, detail = "internal_error", f"{type(problem).__name__}: {problem}"
        if reason is not None:
            if new:
                progress.invalid_by_reason[reason] += 1
            timestamp = record.timestamp if record.timestamp and record.timestamp > 0 else None
            intake.dead_letters.append(DeadLetter(
                record.key, raw, dead_letters.headers(reason, detail, topic, partition, offset, timestamp)
            ))  # fmt: skip
        if new:
            progress.offsets.next_offset = offset + 1


def _valid(progress: PartitionProgress, partition: int, record: InputRecord, event: Event, raw: bytes, new: bool,
           pseudonyms: Pseudonyms, partitions: int, intake: Intake) -> None:  # fmt: skip
    source = rerouted_from(record)
    if source is not None:  # a copy re-routed here: counted and stored where it was first read
        event, _ = pseudonyms.event(event, raw)
        intake.local[partition].append((record.offset, Routed(source, event)))
        return
    valid, stored = pseudonyms.event(event, raw)
    intake.rows.append(event_row(valid, stored))
    key = owner_key(event)
    owned = record.key == key
    if new:
        progress.events_by_type[valid.type] += 1
        if valid.at > progress.latest_at:
            progress.latest_at = valid.at
        progress.keyed_otherwise += not owned
    owner = partition if owned else owner_partition(key, partitions)
    source = f"{partition}:{record.offset}"
    if owner == partition:
        intake.local[partition].append((record.offset, Routed(source, valid)))
    else:  # the original bytes: its owner pseudonymises it as it reads it
        intake.reroutes.append(Reroute(owner, key, raw, [(REROUTED_HEADER, source.encode())]))


def rerouted_from(record: InputRecord) -> str | None:
    """The original's source when ``record`` is a re-routed copy."""
    for name, value in record.headers or ():
        if name == REROUTED_HEADER:
            return value.decode()
    return None


def owner_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as kafka-python, aiokafka and the Java
    client compute it) gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def owner_key(event: Event) -> bytes:
    """The Kafka key a producer should give an event: its ``contact_id`` (an agent event: its
    ``agent_id``), the key ``ccpulse produce`` gives. With Kafka's default partitioner every event
    of a contact then lands on one partition, which the one-pass worker (docs/architecture.md)
    relies on; events keyed otherwise are counted (``ccpulse_events_keyed_otherwise_total``)."""
    owner = event.agent_id if event.type == "agent.state_changed" else event.contact_id
    return (owner or "").encode()


def commit_metadata(progress: PartitionProgress) -> str:
    """The progress as the metadata of its committed offset (compact JSON; must fit Kafka's limit)."""
    document = progress.to_json()
    document.pop("ahead", None)  # read in order by its own consumer: never a hole to remember
    text = orjson.dumps(document).decode()
    if len(text.encode()) > COMMIT_METADATA_BYTES:
        raise ValueError(f"partition progress is {len(text)} bytes, over Kafka's {COMMIT_METADATA_BYTES}-byte "
                         "limit for commit metadata")  # fmt: skip
    return text


def progress_from_metadata(metadata: str | None, committed_offset: int | None) -> PartitionProgress:
    """The progress committed with ``committed_offset`` (a fresh one when nothing was committed)."""
    if committed_offset is None or committed_offset < 0:
        return PartitionProgress()
    stored: dict[str, Any] = orjson.loads(metadata) if metadata else {}
    progress = PartitionProgress.from_json(stored)
    progress.offsets.next_offset = committed_offset  # the offset is the truth; the counts go with it
    return progress


# How far (in event time) an input partition may run ahead of the slowest one that still has
# messages waiting. Contacts expire 26 h (CCPULSE_CONTACT_RETENTION_HOURS) after their last event
# *by the latest event time seen*: a partition read far ahead would make contacts of a slower one
# expire before their late events (a survey up to hours after the end) arrive. Catching up a
# backlog, aiokafka's fetches favour some partitions: 2 M events drifted over a day apart.
ALIGN_US = 3600 * 1_000_000


def ahead(latest_at: dict[Any, int], waiting: set[Any], allowance_us: int = ALIGN_US) -> set[Any]:
    """The partitions to pause: those with messages waiting whose latest event time is more than
    ``allowance_us`` past the slowest partition that has messages waiting."""
    behind = [latest_at[p] for p in waiting if p in latest_at]
    if len(behind) < 2:
        return set()
    floor = min(behind)
    return {p for p in waiting if p in latest_at and latest_at[p] > floor + allowance_us}
