"""The issues pass of one issue-updates partition: its issue keys' groups, in a plain dict.

Pure: no I/O; the caller passes the wall clock (expiry cadence) in. The issues stage
(``pipeline/issues_stage.py``) keeps one :class:`IssuePass` per issue-updates partition it owns,
restored whole from the partition's changelog (``<app>-issues-changelog``: the newest record per
key, which is what log compaction keeps), and runs each fetched batch of that partition through
:meth:`IssuePass.on_batch`.

Exactness after a crash: the changelog keeps any prefix of a batch's records, and the progress
record (which offsets were applied, written first) says which messages the state has seen. A
message at an offset already applied is a *replay*: its updates are applied again (a no-op on
the group) and the key's whole outcome is sent again, since the batch that first applied it may
have died before its reports and rows were out (``pipeline.core.engine.IssueBatch``). The state
may therefore be ahead of the committed offset; reading again from that offset changes nothing.
A crash can keep a batch's reports and lose its records: the board then holds what the restored
groups never reported. A replay therefore clears every state it passes through
(``IssueBatch.apply``), not only the one the restored record remembers.

The records are exactly those of the Faust table the issues stage kept before December 2026
(same topic, partition, JSON key and msgpack value), so an upgraded worker restores them as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
import orjson

from pipeline.core.board import Report
from pipeline.core.engine import IssueBatch, IssueGroup, IssueOutcome
from pipeline.core.expiry import EXPIRE_AT_ONCE, ExpiryClock
from pipeline.core.facts import Row, contact_issue_rows, issue_rows
from pipeline.core.json_bytes import json_bytes
from pipeline.core.partitions import partition_of
from pipeline.core.progress import StageProgress
from pipeline.core.targets import Targets
from pipeline.core.wire import encode, issue_update_decoder

PROGRESS_PREFIX = "\x00progress\x1f"


def progress_key(partition: int) -> str:
    """The key of an issue-updates partition's progress record, in that partition's changelog."""
    return f"{PROGRESS_PREFIX}{partition}"


def issue_partition(key: str, partitions: int) -> int:
    """The changelog partition of a key: an issue key's issue-updates partition, or the progress
    record's own."""
    if key.startswith(PROGRESS_PREFIX):
        return int(key.rsplit("\x1f", 1)[1])
    return partition_of(key, partitions)


@dataclass
class IssueOutput:
    """What one batch of a partition writes and sends."""

    writes: dict[str, bytes | None] = field(default_factory=dict)  # changelog, progress record first
    reports: list[Report] = field(default_factory=list)  # to the board, per key in the order made
    rows: dict[str, list[Row]] = field(default_factory=lambda: {"issues": [], "contact_issues": []})
    holes: list[int] = field(default_factory=list)  # offsets that never arrived (given up)


@dataclass
class IssuePass:
    targets: Targets
    retention_us: int  # the contact retention: issue keys are kept for the FCR window after it
    partition: int = 0
    groups: dict[str, bytes] = field(default_factory=dict)  # issue key -> msgpack IssueGroup
    progress: StageProgress = field(default_factory=StageProgress)
    progress_stored: bool = False  # no record yet: what a batch repeats is unknown (all a replay)
    latest_at: int = 0  # the latest contact time of any group the pass has applied
    _last_at: dict[str, int] = field(default_factory=dict)  # key -> its group's last_at, once known
    _expiry: ExpiryClock = field(default_factory=ExpiryClock)

    # ------------------------------------------------------------------ recovery
    def restore(self, key: bytes, value: bytes | None) -> None:
        """One changelog record (a JSON key, as Faust wrote it), in log order."""
        name = orjson.loads(key)
        if not isinstance(name, str):
            return
        if name.startswith(PROGRESS_PREFIX):
            self.progress = StageProgress.from_json(orjson.loads(value) if value else None)
            self.progress_stored = value is not None
            return
        self._last_at.pop(name, None)
        if value is None:
            self.groups.pop(name, None)
        else:
            self.groups[name] = value

    @property
    def next_offset(self) -> int | None:
        """Where reading goes on when no offset was committed (None: from the start)."""
        return self.progress.offsets.next_offset if self.progress_stored else None

    # ------------------------------------------------------------------ a batch
    def on_batch(self, messages: Iterable[tuple[int, bytes]], wall: float) -> IssueOutput:
        """``messages``: (offset, issue-updates block) in offset order; ``wall`` a monotonic clock."""
        batch = IssueBatch(self.targets, self._load)
        out = IssueOutput()
        for offset, value in messages:
            new = self.progress_stored and self.progress.is_new(offset)
            for update in issue_update_decoder.decode(value):
                group = batch.apply(update, replay=not new)
                self.latest_at = max(self.latest_at, group.last_at)
            out.holes += self.progress.applied(offset)
        out.writes[progress_key(self.partition)] = json_bytes(self.progress.to_json())
        self.progress_stored = True
        for key, group in batch.groups.items():
            self._outcome(key, group, batch.outcome(key), out)
        for key in batch.changed | batch.replayed:  # an unchanged group is stored already
            group = batch.groups[key]
            out.writes[key] = self.groups[key] = encode(group)
            self._last_at[key] = group.last_at
        if self.latest_at and self._expiry.due(self.latest_at, wall):
            for key in self._expired():
                self.groups.pop(key, None)
                self._last_at.pop(key, None)
                out.writes[key] = None
        return out

    def _outcome(self, key: str, group: IssueGroup, outcome: IssueOutcome, out: IssueOutput) -> None:
        out.reports += outcome.reports
        out.rows["issues"] += issue_rows(key, outcome.issues, outcome.gone, group.version)
        out.rows["contact_issues"] += contact_issue_rows(outcome.links, group.version)

    def _load(self, key: str) -> IssueGroup:
        value = self.groups.get(key)
        return msgspec.msgpack.decode(value, type=IssueGroup) if value is not None else IssueGroup()

    # ------------------------------------------------------------------ forgetting
    def _expired(self) -> list[str]:
        """Keys whose last contact is older than the FCR window plus the contact retention before
        the latest: no contact that can still arrive joins them. At most EXPIRE_AT_ONCE a run."""
        horizon = self.latest_at - self.targets.fcr_window_us - self.retention_us
        stale = []
        for key, value in self.groups.items():
            last_at = self._last_at.get(key)
            if last_at is None:
                last_at = self._last_at[key] = msgspec.msgpack.decode(value, type=IssueGroup).last_at
            if last_at < horizon:
                stale.append(key)
                if len(stale) >= EXPIRE_AT_ONCE:
                    break
        return stale

    def keys(self) -> int:
        return len(self.groups)
