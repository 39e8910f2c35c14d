"""The contacts and agents of one input partition, in plain dicts: the one-pass worker's state.

Pure: no I/O, the clock passed in. The ingest stage keeps one :class:`ContactPass` per input
partition it owns (``pipeline/ingest.py``) and hands it each batch of that partition's valid
events, in offset order. A batch gives a :class:`PassOutput`: the state records it changed (for
the partition's changelog, the progress record first), the contacts' and agents' reports (for
the board), their issue updates (for the issues stage) and the contacts' rows (``contact_facts``).

Exactness after a crash: the changelog is applied whole on recovery (the latest record per key,
as log compaction keeps it), so the state may be ahead of the committed input offset; the batches
after that offset are then read again. A replayed event changes nothing in a contact (its source,
``<partition>:<offset>``, is known), and the progress record says which offsets were applied
already, so duplicates and conflicts are counted once. The progress record goes first into the
changelog partition the contacts' records go to: a crash keeps a prefix of a batch's records, so
an offset counted is an offset whose records are on their way, or already there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import msgspec
import orjson

from pipeline.core.board import Report
from pipeline.core.engine import AgentRecord, ContactBatch, ContactRecord, IssueUpdate
from pipeline.core.expiry import EXPIRE_AT_ONCE, ExpiryClock, contact_expired, contact_kept_until
from pipeline.core.facts import Row, contact_row
from pipeline.core.intake import owner_partition
from pipeline.core.progress import StageProgress
from pipeline.core.targets import Targets
from pipeline.core.wire import Routed

PROGRESS_KEY = b"\x00progress"  # the changelog key of the partition's progress record
AGENT_PREFIX = "agent\x1f"


def legacy_owner(key: bytes | None, partitions: int) -> tuple[bytes, int] | None:
    """A record of the Faust contacts stage's tables (versions before December 2026; their
    changelogs ``<app>-contacts-changelog`` and ``<app>-agents-changelog`` had JSON string keys
    and the same msgpack values): the key as this pass stores it and the input partition that
    owns it now (Kafka's default partitioner over the contact or agent id). None for a progress
    record or a key of no contact or agent."""
    if not key:
        return None
    name = orjson.loads(key)
    if not isinstance(name, str) or "\x1f" not in name or name.startswith("\x00"):
        return None
    kind, identifier = name.split("\x1f", 1)
    if kind not in ("contact", "agent"):
        return None
    return name.encode(), owner_partition(identifier.encode(), partitions)


@dataclass
class PassOutput:
    writes: dict[bytes, bytes | None] = field(default_factory=dict)  # changelog; None deletes; progress first
    reports: list[Report] = field(default_factory=list)
    issue_updates: list[IssueUpdate] = field(default_factory=list)
    contact_rows: list[Row] = field(default_factory=list)


@dataclass
class ContactPass:
    targets: Targets
    retention_us: int
    contact_records: dict[str, bytes] = field(default_factory=dict)  # contact key -> msgpack record
    agent_records: dict[str, bytes] = field(default_factory=dict)  # agent key -> msgpack record
    progress: StageProgress = field(default_factory=StageProgress)
    latest_at: int = 0  # the greatest event time applied
    _kept_until: dict[str, int] = field(default_factory=dict)  # contact key -> event time it expires after
    _expiry: ExpiryClock = field(default_factory=ExpiryClock)

    # ------------------------------------------------------------------ recovery
    def restore(self, key: bytes, value: bytes | None) -> None:
        """One changelog record, in log order (a later record of a key replaces the earlier)."""
        if key == PROGRESS_KEY:
            self.progress = StageProgress.from_json(orjson.loads(value) if value else None)
            return
        name = key.decode()
        if value is None:
            self._store(name).pop(name, None)
        else:
            self._store(name)[name] = value
        self._kept_until.pop(name, None)

    def contacts(self) -> int:
        return len(self.contact_records)

    def agents(self) -> int:
        return len(self.agent_records)

    def _store(self, key: str) -> dict[str, bytes]:
        return self.agent_records if key.startswith(AGENT_PREFIX) else self.contact_records

    # ------------------------------------------------------------------ a batch
    def on_batch(self, messages: Iterable[tuple[int, Routed]], wall: float) -> PassOutput:
        """``messages``: (offset, routed event) in offset order; ``wall`` a monotonic clock (expiry)."""
        batch = ContactBatch(self.targets, self._load)
        progress = self.progress
        before = batch.duplicates, batch.conflicts
        for offset, routed in messages:
            batch.event(routed.source, routed.event, progress.is_new(offset))
            progress.applied(offset)
        progress.duplicates += batch.duplicates - before[0]
        progress.conflicts += batch.conflicts - before[1]
        self.latest_at = max(self.latest_at, batch.latest_at)
        out = PassOutput()
        out.writes[PROGRESS_KEY] = orjson.dumps(progress.to_json())
        for _key, reports, updates in batch.outcome():
            out.reports += reports
            out.issue_updates += updates
        for key, record in batch.records.items():
            value = msgspec.msgpack.encode(record)
            self._store(key)[key] = value
            out.writes[key.encode()] = value
            if isinstance(record, ContactRecord):
                self._kept_until[key] = contact_kept_until(record.state, self.retention_us)
                out.contact_rows.append(contact_row(key.split("\x1f", 1)[1], record, self.targets))
        if self.latest_at and self._expiry.due(self.latest_at, wall):
            for key, clears in list(self._expired()):
                self._store(key).pop(key, None)
                self._kept_until.pop(key, None)
                out.writes[key.encode()] = None
                out.reports += clears
        return out

    def _load(self, key: str) -> ContactRecord | AgentRecord | None:
        value = self._store(key).get(key)
        if value is None:
            return None
        kind = AgentRecord if key.startswith(AGENT_PREFIX) else ContactRecord
        return msgspec.msgpack.decode(value, type=kind)  # type: ignore[return-value]

    # ------------------------------------------------------------------ forgetting
    def _expired(self) -> Iterator[tuple[str, list[Report]]]:
        """Contacts past the retention that wait for nothing, and agents offline that long (with the
        reports that clear them from the board); at most EXPIRE_AT_ONCE keys a run."""
        latest, retention = self.latest_at, self.retention_us
        found = 0
        for key, value in self.agent_records.items():
            if found >= EXPIRE_AT_ONCE:
                return
            agent = msgspec.msgpack.decode(value, type=AgentRecord)
            if agent.state == "offline" and agent.at < latest - retention:
                found += 1
                source = f"agent:{key.split(chr(0x1F), 1)[1]}"
                yield key, [Report(source, queue) for queue in agent.reported_queues]
        for key, value in self.contact_records.items():
            if found >= EXPIRE_AT_ONCE:
                return
            until = self._kept_until.get(key)
            state = None
            if until is None:
                state = self._contact(value).state
                until = self._kept_until[key] = contact_kept_until(state, retention)
            if latest > until and contact_expired(state or self._contact(value).state, latest, retention):
                found += 1
                yield key, []

    @staticmethod
    def _contact(value: bytes) -> ContactRecord:
        return msgspec.msgpack.decode(value, type=ContactRecord)
