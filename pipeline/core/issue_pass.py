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
A crash can keep a batch's rows and lose its records: ClickHouse then holds contributions and
issues the restored groups never wrote. A replay therefore deletes every minute and issue id any
state it passes through had (``IssueBatch.apply``), not only the ones the restored record remembers.

The board gets sums, not one report per key (as the contacts pass does, ``pipeline/core/sums.py``):
the pass keeps the issue counts of its keys per (queue, channel, minute), derived from the groups
after a restore and updated by each changed key's counts after the batch minus its counts before,
and sends the sums a batch touched as minute partials, versioned by the partition's next offset,
with the source :func:`pipeline.core.board.issue_source`. A new owner takes the partition over with
an epoch and fences earlier owners' partials, as the contacts pass does. Keys expire once the FCR
window and the contact retention have passed; the minutes before that horizon are *closed* first
(a change to one is re-summed in ClickHouse from ``contributions``, which the pass writes).

The records are exactly those of the Faust table the issues stage kept before December 2026
(same topic, partition, JSON key and msgpack value), so an upgraded worker restores them as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
import orjson

from pipeline.core.board import Fence, MinutePartial, QueuePartial, issue_source
from pipeline.core.engine import IssueBatch, IssueGroup, IssueOutcome
from pipeline.core.expiry import ExpiryClock
from pipeline.core.facts import Minute, Row, contact_issue_rows, issue_contribution_rows, issue_rows
from pipeline.core.issues import contributions, group
from pipeline.core.json_bytes import json_bytes
from pipeline.core.partitions import partition_of
from pipeline.core.progress import StageProgress
from pipeline.core.sums import PartitionSums, Touched, first_open_minute
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
    minutes: list[MinutePartial] = field(default_factory=list)  # to the board
    live: list[QueuePartial] = field(default_factory=list)  # none: issue keys have no live state
    rows: dict[str, list[Row]] = field(
        default_factory=lambda: {"issues": [], "contact_issues": [], "contributions": []})  # fmt: skip
    touched: set[Minute] = field(default_factory=set)  # every minute the contributions rows change
    closed: set[Minute] = field(default_factory=set)  # of those, the closed ones: to re-sum in ClickHouse
    holes: list[int] = field(default_factory=list)  # offsets that never arrived (given up)
    epoch: int = 0  # the owner's: the changelog records carry it (pipeline/changelog.py)


@dataclass
class IssueTakeOver:
    """What a new owner of an issue-updates partition sends, in this order, before its first batch."""

    writes: dict[str, bytes | None]  # the progress record that keeps the new epoch
    fence: Fence  # to every board partition
    minutes: list[MinutePartial]
    live: list[QueuePartial]  # none: issue keys have no live state (kept for the board's message shape)


@dataclass
class IssuePass:
    targets: Targets
    retention_us: int  # the contact retention: issue keys are kept for the FCR window after it
    partition: int = 0
    groups: dict[str, bytes] = field(default_factory=dict)  # issue key -> msgpack IssueGroup
    progress: StageProgress = field(default_factory=StageProgress)
    progress_stored: bool = False  # no record yet: what a batch repeats is unknown (all a replay)
    latest_at: int = 0  # the latest contact time of any group the pass has applied
    replay_until: int = 0  # messages before this offset are applied as replays (take_over)
    epoch: int = 0  # when this owner took the partition over (µs, see take_over)
    _stored_epoch: int = 0  # the greatest epoch a progress record read kept
    _closed_before: int = -(2**62)  # as restored from the progress record
    _sums: PartitionSums | None = None  # derived from the groups on first use (sums)
    _last_at: dict[str, int] = field(default_factory=dict)  # key -> its group's last_at, once known
    _expiry: ExpiryClock = field(default_factory=ExpiryClock)
    _again: dict[str, bytes | None] = field(default_factory=dict)  # written again by take_over (write_again)

    # ------------------------------------------------------------------ recovery
    def restore(self, key: bytes, value: bytes | None) -> None:
        """One changelog record (a JSON key, as Faust wrote it), in log order."""
        name = orjson.loads(key)
        if not isinstance(name, str):
            return
        self._sums = None
        if name.startswith(PROGRESS_PREFIX):
            stored = orjson.loads(value) if value else None
            self.progress = StageProgress.from_json(stored)
            # a take-over's record before any batch (``applied`` false) says nothing of what was applied
            self.progress_stored = stored is not None and bool(stored.get("applied", True))
            self._closed_before = int((stored or {}).get("closed_before", -(2**62)))
            self._stored_epoch = max(self._stored_epoch, int((stored or {}).get("epoch", 0)))
            return
        self._last_at.pop(name, None)
        if value is None:
            self.groups.pop(name, None)
        else:
            self.groups[name] = value

    def write_again(self, keys: Iterable[bytes]) -> None:
        """Keys whose latest changelog record an earlier owner sent after a later one took over
        (``pipeline.changelog.OwnerEpochs``; not applied): :meth:`take_over` writes their value as
        restored (None: none) again, so that compaction keeps that one."""
        for key in keys:
            name = orjson.loads(key)
            if isinstance(name, str) and not name.startswith(PROGRESS_PREFIX):
                self._again[name] = self.groups.get(name)

    @property
    def next_offset(self) -> int | None:
        """Where reading goes on when no offset was committed (None: from the start)."""
        return self.progress.offsets.next_offset if self.progress_stored else None

    @property
    def sums(self) -> PartitionSums:
        """The partition's issue counts per (queue, channel, minute), summed from its groups once
        after a restore."""
        if self._sums is None:
            sums = PartitionSums(issue_source(self.partition), self._closed_before)
            ignored = Touched()
            for value in self.groups.values():
                found = msgspec.msgpack.decode(value, type=IssueGroup)
                self.latest_at = max(self.latest_at, found.last_at)
                sums.lines({}, contributions(group(found.contacts.values(), self.targets.fcr_window_us)), ignored)
            self._sums = sums
        return self._sums

    def take_over(self, now_us: int, log_end: int = 0) -> IssueTakeOver:
        """This owner's epoch, after every earlier owner's; its progress record is to be written and
        acknowledged before the fence is sent, then every sum held as partials of version 0 (as
        ``ContactPass.take_over``). ``log_end``: the partition's end offset now. An earlier owner may
        have written the rows of messages up to it and died before their changelog records (rows go
        first): until then every message is applied as a replay, whose outcome deletes every minute
        any state it passes through had (such a batch's rows are among them)."""
        self.replay_until = log_end
        self.epoch = max(now_us, self._stored_epoch + 1)
        self._stored_epoch = self.epoch
        minutes, _ = self.sums.everything(self.epoch)
        fence = Fence(issue_source(self.partition), self.epoch)
        writes = {progress_key(self.partition): self._progress_record(), **self._again}
        self._again = {}
        return IssueTakeOver(writes, fence, minutes, [])

    def _progress_record(self) -> bytes:
        return json_bytes({**self.progress.to_json(), "closed_before": self.sums.closed_before, "epoch": self.epoch,
                           "applied": self.progress_stored})  # fmt: skip

    # ------------------------------------------------------------------ a batch
    def on_batch(self, messages: Iterable[tuple[int, bytes]], wall: float) -> IssueOutput:
        """``messages``: (offset, issue-updates block) in offset order; ``wall`` a monotonic clock."""
        sums = self.sums
        batch = IssueBatch(self.targets, self._load, reports=False)
        out, touched = IssueOutput(epoch=self.epoch), Touched()
        for offset, value in messages:
            new = self.progress_stored and self.progress.is_new(offset) and offset >= self.replay_until
            for update in issue_update_decoder.decode(value):
                group = batch.apply(update, replay=not new)
                self.latest_at = max(self.latest_at, group.last_at)
            out.holes += self.progress.applied(offset)
        out.writes[progress_key(self.partition)] = b""  # first: its value once the batch's closing is known
        self.progress_stored = True  # from this batch on, the record says which offsets were applied
        for key in batch.changed | batch.replayed:  # an unchanged key sends nothing: its last outcome stands
            group = batch.groups[key]
            outcome = batch.outcome(key)
            before = contributions(issue for _, issue in batch.before[key]) if key in batch.before else outcome.lines
            sums.lines(before, outcome.lines, touched, key in batch.replayed)
            self._rows(key, group, outcome, out)
            out.writes[key] = self.groups[key] = encode(group)
            self._last_at[key] = group.last_at
        if self.latest_at and self._expiry.due(self.latest_at, wall):
            sums.close(first_open_minute(self.latest_at, self.targets.fcr_window_us + self.retention_us))
            expired = self._expired()
            self._expiry.ran(len(expired))
            for key in expired:
                self.groups.pop(key, None)
                self._last_at.pop(key, None)
                out.writes[key] = None
        out.writes[progress_key(self.partition)] = self._progress_record()
        out.minutes, _ = sums.partials(touched, self.epoch, self.progress.offsets.next_offset)
        out.closed = touched.closed
        return out

    def _rows(self, key: str, group: IssueGroup, outcome: IssueOutcome, out: IssueOutput) -> None:
        out.rows["issues"] += issue_rows(key, outcome.issues, outcome.gone, group.version)
        out.rows["contact_issues"] += contact_issue_rows(outcome.links, group.version)
        out.rows["contributions"] += issue_contribution_rows(key, outcome.lines, outcome.left, group.version)
        out.touched.update((queue, channel, minute) for (queue, channel), minutes in outcome.lines.items()
                           for minute in minutes)  # fmt: skip
        out.touched.update(outcome.left)

    def _load(self, key: str) -> IssueGroup:
        value = self.groups.get(key)
        return msgspec.msgpack.decode(value, type=IssueGroup) if value is not None else IssueGroup()

    # ------------------------------------------------------------------ forgetting
    def _expired(self) -> list[str]:
        """Keys whose last contact is older than the FCR window plus the contact retention before
        the latest: no contact that can still arrive joins them. At most ``at_once`` a run."""
        horizon = self.latest_at - self.targets.fcr_window_us - self.retention_us
        stale = []
        for key, value in self.groups.items():
            last_at = self._last_at.get(key)
            if last_at is None:
                last_at = self._last_at[key] = msgspec.msgpack.decode(value, type=IssueGroup).last_at
            if last_at < horizon:
                stale.append(key)
                if len(stale) >= self._expiry.at_once:
                    break
        return stale

    def keys(self) -> int:
        return len(self.groups)
