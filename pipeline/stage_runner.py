"""The stage runner: one consumer of its own per stage, batches in flight, commits in order.

A stage (the ingest stage and its contacts pass, the issues stage) reads its topic in bulk with
its own aiokafka consumer (``getmany``, public API only) in a group of its own,
``<app id>-<stage>``; Faust's consumer is not on its path. The runner owns what every stage
needs the same way:

- **batches in flight**: the next batch is read and processed while earlier ones are being sent
  and written (at most ``MAX_IN_FLIGHT`` uncommitted);
- **commits in order**: a batch's offsets are committed only once every message it produced is
  acknowledged by the broker and its rows are durable in ClickHouse, and never before an earlier
  batch's; a send that failed for good reads everything again from the last commit (a rewind);
- **hand-overs**: a revocation cancels a take-over under way and waits (briefly) for the batches
  in flight to be committed, and a batch fetched before it is dropped unprocessed (the
  partitions' next owner reads it again); an assignment takes the partitions over — their state
  from their changelog, read whole by a group-less consumer (:meth:`StageRunner.read_whole`) —
  before any batch of theirs is processed (the partitions are paused meanwhile). The take-over
  runs in a task of its own, not in aiokafka's assignment callback: aiokafka starts a member's
  heartbeats only once that callback has returned, so a take-over longer than the group session
  inside it got the member evicted, and its group handed everything over again;
- **state kept across a hand-over that gives it back**: a revocation whose batches were all
  committed parks each partition's state instead of dropping it; if the next assignment gives the
  partition back and Kafka holds what it held then — the same committed offset, and every
  changelog partition of it ending where this stage's own last write left it (no other owner wrote
  a record since: a take-over writes one first) — the state is used as it is: no changelog is read
  again, no fence or partial is sent (:meth:`StageRunner.keep_parked`). Anything else (a send that
  failed, a revocation that could not wait for its batches, a changelog that moved) takes the
  partition over from its changelog, as a new owner would. A commit that failed does not stop a
  partition from being parked: every record of its batches was acknowledged, so the state is what
  the changelog holds, ahead of the commit as a restored state would be;
- **lag**: messages not yet committed over the owned partitions.

A subclass says what a batch does (:meth:`StageRunner.process`), how partitions are taken over
(:meth:`StageRunner.take_over`, which first asks :meth:`StageRunner.keep_parked`), which changelog
partitions hold a partition's state (:meth:`StageRunner.changelogs`), how it parks a partition's
state and takes it back (:meth:`StageRunner.park`, :meth:`StageRunner.unpark`), what it forgets
of partitions handed over for good (:meth:`StageRunner.forget`, then
:meth:`StageRunner.handed_over`) or rewound (:meth:`StageRunner.rewound`). Changelog records go
through :meth:`StageRunner.send_state`, which counts them (before they are sent: a partition's
end is never past the count unless another writer appended to it).

A take-over's long computations (summing a restored state, rebuilding the board) run in a worker
thread (``asyncio.to_thread``) on state no batch touches meanwhile, and the changelog is read in
steps of ``RESTORE_RECORDS``: the loop must answer within the group session, for it heartbeats for
the worker's three consumer groups (docs/operations.md, "Hand-overs").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from pipeline.assignor import StickyAssignor
from pipeline.changelog import OwnerEpochs, send_records
from pipeline.settings import Settings
from pipeline.sink import Sink, SinkBatch

log = logging.getLogger("ccpulse.stages")

MAX_IN_FLIGHT = 128  # batches read and processed but not yet committed (their rows wait in the sink, bounded there)
REVOKE_WAIT_SECONDS = 10.0  # how long a hand-over waits for in-flight batches to be committed
# How long a group waits for its members to rejoin once a rebalance has begun (aiokafka's default is
# the session, 6-10 s): a revocation cancels a take-over under way and waits for the batches in
# flight (REVOKE_WAIT_SECONDS); a member later than this is dropped from the group, whose partitions
# are then handed over once more. A dead member is still noticed after the session.
REBALANCE_TIMEOUT_SECONDS = 60.0
FETCH_BYTES_PER_PARTITION = 1024 * 1024  # aiokafka's default: ~3,000 simulator events a partition per fetch
# A take-over that Kafka fails (a broker restarting, a leader moving) is tried again, its partitions
# still paused, with pauses doubling from the first to the last, for up to TAKE_OVER_SECONDS; then
# the worker stops (its supervisor starts it again)
TAKE_OVER_PAUSES = (0.5, 10.0)
TAKE_OVER_SECONDS = 300.0
RESTORE_RECORDS = 5_000  # changelog records read and applied per step of a restore (~50 ms; the loop answers between)
# How often a stage whose changelog records carry their owner's epoch asks where its changelog
# partitions end (StageRunner._watch_changelogs): records another writer appended since are found
# within this, long before log compaction can reach them (the active segment is never compacted)
CHANGELOG_WATCH_SECONDS = 10.0


@dataclass
class InFlight:
    """A processed batch on its way: what it sent, whether its rows are durable, what to commit."""

    generation: int
    commit: dict[TopicPartition, OffsetAndMetadata]
    deliveries: list[asyncio.Future[Any]]
    durable: asyncio.Event = field(default_factory=asyncio.Event)

    async def finished(self) -> None:
        """Returns once every message is acknowledged and every row durable; raises if a send failed."""
        if self.deliveries:
            await asyncio.gather(*self.deliveries)
        await self.durable.wait()


class StageRunner(Service):
    """Started with the Faust app; see the module's text. ``stage``: the stage's name (its group is
    ``<app id>-<stage>``); ``topic``: what it reads; ``max_records``: a batch's most messages."""

    # the stage's changelog records carry their owner's epoch: records another writer appends to an
    # owned changelog partition are found and the partition taken over again (the module's text)
    watches_changelogs = False

    def __init__(self, *, app: Any, settings: Settings, sink: Sink | None, stage: str, topic: str, max_records: int,
                 linger: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.sink = sink
        self.linger = linger  # wait a little for a fuller batch (see _fetch)
        self.catching_up = False  # set by the worker from its stages' lag: a longer linger
        self.app = app
        self.settings = settings
        self.stage = stage
        self.topic = topic
        self.max_records = max_records
        self.restorer: AIOKafkaConsumer | None = None  # reads the state changelog (no group)
        self.handing_over = False  # between a revocation and the next assignment's take-over
        self.committed: dict[TopicPartition, OffsetAndMetadata | None] = {}  # per owned partition
        self.consumer: AIOKafkaConsumer | None = None
        self._asking = False  # the consumer has started and is not stopping: Kafka may be asked (lag)
        self._in_flight: deque[InFlight] = deque()
        self._asked_since: float | None = None  # an end-offsets question to Kafka not answered yet
        self._failing_since: float | None = None  # the first unanswered question since the last answer
        self._changed = asyncio.Event()  # a batch was added or finished
        self._batch = asyncio.Lock()  # held while a batch is read into the in-flight queue
        self._taking: asyncio.Task[None] | None = None  # the take-over of the latest assignment
        self._generation = 0  # moves on with every hand-over and rewind: older batches never commit
        self._stopping = False
        self._committing = False  # a commit request is on its way (a hand-over waits for it)
        # Kept across a hand-over (see the module's text): the committed offset of each parked
        # partition, and where each changelog partition of the owned or parked partitions ends
        # after this stage's own writes (its end at the take-over's read, plus the records sent since).
        self._parked: dict[TopicPartition, OffsetAndMetadata | None] = {}
        self.parked_state: dict[int, Any] = {}  # partition -> the stage's state of it, parked
        self._log_ends: dict[TopicPartition, int] = {}
        self._unsure = False  # since the last hand-over, a send failed or a batch was not settled: park nothing
        self._written_by_others: set[TopicPartition] = set()  # owned partitions to take over again (_watch_changelogs)
        self.taken_over_again = 0  # partitions taken over again for another writer's records (a metric)
        # when the group last said this consumer is a member (a commit, an assignment), and how long
        # a silence makes _still_member ask it again (the consumer's heartbeat interval)
        self._confirmed_at = 0.0
        self._confirm_after = min(3.0, settings.session_timeout_seconds / 3)

    # ------------------------------------------------------------------ what a stage does
    async def process(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        """Process one fetched batch and queue it with :meth:`in_flight` (under the batch lock)."""
        raise NotImplementedError

    async def take_over(self, tps: list[TopicPartition]) -> None:
        """Take ``tps`` over: restore their state, record their committed offsets in
        ``self.committed`` and seek the consumer (no batch is processed meanwhile)."""
        raise NotImplementedError

    def forget(self, partition: int) -> None:
        """A partition was handed over: drop what the stage keeps of it (its parked state goes too)."""

    def changelogs(self, partition: int) -> list[TopicPartition]:
        """The changelog partitions that hold ``partition``'s state (none: nothing is parked)."""
        return []

    def park(self, partition: int) -> bool:
        """A partition was handed over with every batch committed: set its state aside into
        :attr:`parked_state` (:meth:`set_aside`; False: the stage holds none of it) until the next
        assignment says whether it comes back."""
        return False

    def unpark(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> None:
        """A parked partition came back as it was: its state (``self.parked_state.pop``) is the
        stage's again, reading goes on from ``committed``."""

    def set_aside(self, held: dict[int, Any], partition: int) -> bool:
        """Move a partition's state from ``held`` to :attr:`parked_state`; False if there is none."""
        found = held.pop(partition, None)
        if found is not None:
            self.parked_state[partition] = found
        return found is not None

    async def committed_now(self, tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """The group's committed offsets of ``tps`` now, as :attr:`committed` keeps them (with the
        metadata the stage commits; the ingest stage's counts)."""
        assert self.consumer is not None
        found: dict[TopicPartition, OffsetAndMetadata | None] = {}
        for tp in tps:
            offset = await self.consumer.committed(tp)
            found[tp] = OffsetAndMetadata(offset, "") if offset is not None and offset >= 0 else None
        return found

    async def handed_over(self) -> None:
        """After a hand-over's partitions are forgotten (the board is rebuilt without them)."""

    def rewound(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> None:
        """Reading goes on from ``committed`` again: reset what the stage counted since."""

    def after_batch(self) -> None:
        """Called after every processed batch (the ingest stage aligns partitions here)."""

    # ------------------------------------------------------------------ what the worker reads
    @property
    def taking_over(self) -> bool:
        """While an assignment's partitions are taken over."""
        return self._taking is not None and not self._taking.done()

    def in_flight(self) -> int:
        return len(self._in_flight)

    def kafka_silent_since(self) -> float | None:
        """When Kafka last left a question of :meth:`lag` unanswered, if it has not answered one
        since (monotonic seconds); None while it answers."""
        return self._failing_since or self._asked_since

    async def lag(self) -> tuple[int, int] | None:
        """(messages not yet committed, sum of committed offsets) over the owned partitions; None
        while not known: before the first assignment is taken over, during a hand-over or a
        take-over, or when the broker does not answer (a lag of 0 would read "caught up"). Kafka is
        asked all the same (for the stage topic's first partition when none is owned), so that
        :meth:`kafka_silent_since` knows whether it answers: a broker's orderly stop starts with
        every group's hand-over."""
        if self.consumer is None or not self._asking:  # the timer asks from the worker's start on
            return None
        tps = list(self.committed) or [TopicPartition(self.topic, 0)]
        self._asked_since = time.monotonic()
        try:
            ends = await self.consumer.end_offsets(tps)
        except KafkaError:
            self._failing_since = self._failing_since or self._asked_since
            return None
        finally:
            self._asked_since = None
        self._failing_since = None
        if not self.committed or self.handing_over or self.taking_over:
            return None
        waiting = done = 0
        for tp in tps:
            committed = self.committed.get(tp)
            offset = committed.offset if committed is not None else 0
            waiting += max(0, ends.get(tp, 0) - offset)
            done += offset
        return waiting, done

    # ------------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            group_id=f"{settings.app_id}-{self.stage}",
            client_id=f"{settings.app_id}-{self.stage}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
            session_timeout_ms=int(settings.session_timeout_seconds * 1000),
            rebalance_timeout_ms=int(max(REBALANCE_TIMEOUT_SECONDS, settings.session_timeout_seconds) * 1000),
            heartbeat_interval_ms=int(self._confirm_after * 1000),
            metadata_max_age_ms=15_000,
            # each member keeps what it owned (its state with it); round robin while a worker of an
            # earlier version is in the group (pipeline/assignor.py)
            partition_assignment_strategy=(StickyAssignor(), RoundRobinPartitionAssignor),
            **settings.kafka_security.aiokafka_options(),  # type: ignore[arg-type]
        )
        self.restorer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            group_id=None,
            client_id=f"{settings.app_id}-{self.stage}-restore",
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * FETCH_BYTES_PER_PARTITION,
            **settings.kafka_security.aiokafka_options(),  # type: ignore[arg-type]
        )
        await self.restorer.start()
        self.consumer.subscribe([self.topic], listener=_HandOver(self))
        await self.consumer.start()
        self._asking = True
        self.add_future(self._or_stop("stopped", self._read_batches()))
        self.add_future(self._or_stop("commits stopped", self._commit_in_order()))
        if self.watches_changelogs:
            self.add_future(self._or_stop("the changelogs' watch stopped", self._watch_changelogs()))

    async def on_stop(self) -> None:
        """Finish the batch in hand, commit what is finished (briefly), leave the group."""
        self._stopping = True
        self._asking = False
        if self._taking is not None:
            self._taking.cancel()  # its partitions' next owner (this worker too) takes them over again
        try:
            await asyncio.wait_for(self._settle(), REVOKE_WAIT_SECONDS)
        except TimeoutError:
            log.warning("%s: stopping with %d batches not committed: they are read again after the restart",
                        self.stage, len(self._in_flight))  # fmt: skip
        if self.consumer is not None:
            await self.consumer.stop()
        if self.restorer is not None:
            await self.restorer.stop()

    # ------------------------------------------------------------------ reading
    async def _or_stop(self, what: str, work: Awaitable[None]) -> None:
        """``work``; if it fails (a bug, or a Kafka error the client does not retry), stop the
        worker: its supervisor starts it again, and it goes on from the last commit. A
        cancellation (on_stop) is a BaseException and passes."""
        try:
            await work
        except Exception as problem:
            if self._stopping:
                return
            log.critical("%s %s: %s: %s; stopping the worker (the supervisor restarts it; it goes on from the "
                         "last commit)", self.stage, what, type(problem).__name__, problem, exc_info=True)  # fmt: skip
            await self.app.crash(problem)

    async def _read_batches(self) -> None:
        assert self.consumer is not None
        while not self._stopping:
            # getmany returns records already fetched without suspending, and a send suspends only
            # when the producer's buffer is full: on a backlog this loop would run batch after
            # batch and hold the event loop for seconds (heartbeats, the other stages, /metrics)
            await asyncio.sleep(0)
            if len(self._in_flight) >= MAX_IN_FLIGHT or self.taking_over:
                await self._wait_for_change()
                continue
            if self._written_by_others and not self.handing_over:
                await self._take_over_again()
                continue
            # Not under the batch lock: during a rebalance getmany waits for the next assignment,
            # which waits for the revocation, which waits for the lock. Records fetched before a
            # take-over's pause or seek are not returned after it (aiokafka drops them).
            fetched = await self._fetch()
            if not fetched:
                continue
            async with self._batch:
                if self.handing_over:
                    # Fetched before a revocation that has settled since: its partitions may be
                    # another worker's now. Dropped unsent; whoever owns them next (this worker
                    # too) reads them again from their last commit (take_over seeks there).
                    continue
                if not await self._still_member(fetched):
                    continue
                await self.process(fetched)
            self.after_batch()

    async def _still_member(self, fetched: dict[TopicPartition, list[Any]]) -> bool:
        """Whether the group still counts this consumer as the owner of its partitions, asked only
        when nothing has said so for a heartbeat interval: a process frozen past its group session
        (a stopped container, a stalled VM) is evicted, its partitions given to another worker, and
        when it runs again its consumer returns what it fetched before it learns that. Processing
        that batch would write changelog records of its stale state after the new owner's (seen:
        ``tests/integration/test_hand_overs.py``). So after such a silence the batches in flight are
        committed first and then the committed offsets once more (a commit is refused to a member
        the group has dropped); refused, the batch is put back unprocessed (its partitions' next
        owner reads it) and the revocation that follows hands everything over."""
        if time.monotonic() - self._confirmed_at < self._confirm_after:
            return True
        if not await self._committed_unless_handed_over():  # their commits answer it too; a revocation
            return False  # came meanwhile: its take-over seeks to the last commit
        if time.monotonic() - self._confirmed_at < self._confirm_after:
            return True
        assert self.consumer is not None
        offsets = {tp: committed for tp, committed in self.committed.items() if committed is not None}
        try:
            if offsets:
                await self.consumer.commit(offsets)
        except KafkaError as problem:
            self._unsure = True
            log.warning("%s: the group refused a commit after %.0f s without one (%s: %s): this worker may have "
                        "been dropped from its group; the batch fetched is put back unprocessed",
                        self.stage, time.monotonic() - self._confirmed_at, type(problem).__name__, problem)  # fmt: skip
            for tp, records in fetched.items():
                with contextlib.suppress(KafkaError):  # no longer assigned: its next owner reads it
                    self.consumer.seek(tp, records[0].offset)
            await self._wait_for_change()
            return False
        self._confirmed_at = time.monotonic()
        return True

    async def _fetch(self) -> dict[TopicPartition, list[Any]]:
        """A batch: what the consumer has (up to ``max_records``); with ``linger``, what comes within
        CCPULSE_BATCH_SECONDS after the first record too while the worker catches up (as Faust's
        ``take_events`` did), or within CCPULSE_LIVE_BATCH_SECONDS while it is caught up. A stage fed
        by another keeps up with it in small fetches, and each batch costs rows and sends (a minute
        the board touched, an issue key that changed) whatever its size: without the wait the
        issues stage and the board wrote 1.2x and 1.5x the rows of their Faust agents on a 1 M
        backlog, and live at 1,000 events/s a 30 ms wait saved 14% of the worker's CPU for no
        measurable freshness. The backlog's 0.1 s, live, was most of a probe's way to the
        wallboard (82 ms of 110, docs/performance.md)."""
        assert self.consumer is not None
        fetched = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
        taken = sum(len(records) for records in fetched.values())
        wait = self.settings.batch_seconds if self.catching_up else self.settings.live_batch_seconds
        if not self.linger or not taken or wait <= 0:
            return fetched
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while taken < self.max_records and (left := deadline - loop.time()) > 0:
            more = await self.consumer.getmany(
                timeout_ms=max(1, int(left * 1000)), max_records=self.max_records - taken
            )
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                taken += len(records)
        return fetched

    async def rows_first(self, commit: dict[TopicPartition, OffsetAndMetadata], rows: SinkBatch) -> InFlight:
        """A batch in flight whose rows go to the sink first: durable once written (at once without a
        sink). Anything the batch sends after them (partials, reports, changelog records) reaches a
        consumer after the rows are handed over, so a re-sum the board asks for comes after them
        (one sink, in order). Waits while the sink's backlog is full (backpressure)."""
        batch = InFlight(self._generation, commit, [])
        if self.sink is None:
            batch.durable.set()
        else:
            rows.on_durable = batch.durable.set
            await self.sink.write(rows)
        return batch

    def queue(self, batch: InFlight) -> None:
        """A processed batch, to be committed once it is sent and durable."""
        self._in_flight.append(batch)
        self._changed.set()

    # ------------------------------------------------------------------ committing, in order
    async def _commit_in_order(self) -> None:
        assert self.consumer is not None
        while True:
            if not self._in_flight:
                await self._wait_for_change()
                continue
            head = self._in_flight[0]
            try:
                await head.finished()
            except Exception as problem:  # noqa: BLE001 - a send failed for good: read it all again
                await self._rewind(f"a message could not be sent ({type(problem).__name__}: {problem})")
                continue
            offsets: dict[TopicPartition, OffsetAndMetadata] = {}
            while self._in_flight and self._in_flight[0].durable.is_set() and _sent(self._in_flight[0]):
                done = self._in_flight.popleft()
                if done.generation == self._generation:
                    offsets.update(done.commit)
            self._changed.set()
            offsets = {tp: value for tp, value in offsets.items() if tp in self.committed}
            if not offsets:
                continue
            self._committing = True
            try:
                await self.consumer.commit(offsets)
            except KafkaError as problem:
                # a hand-over under way: the new owner reads from the last commit (counted once).
                # The state may be parked all the same: its records are acknowledged, so it is what
                # the changelog holds — ahead of the commit, as a restore would be (keep_parked)
                log.warning("%s commit failed (%s: %s); the partitions' next owner reads again from "
                            "their last commit", self.stage, type(problem).__name__, problem)  # fmt: skip
                continue
            finally:
                self._committing = False
                self._changed.set()
            self._confirmed_at = time.monotonic()
            for tp, value in offsets.items():
                if tp in self.committed:
                    self.committed[tp] = value

    async def _rewind(self, why: str) -> None:
        """Forget every batch in flight and read again from the last commit."""
        assert self.consumer is not None
        async with self._batch:
            self._generation += 1
            self._in_flight.clear()
            self._unsure = True  # the state may hold what the failed batch's records did not keep
            for tp, committed in self.committed.items():
                self.rewound(tp, committed)
                await self.start_from(tp, committed)
            log.error("%s: %s; reading again from the last commit %s", self.stage, why,
                      {tp.partition: c.offset if c else None for tp, c in self.committed.items()})  # fmt: skip
            self._changed.set()

    async def _wait_for_change(self) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), 0.5)
        except TimeoutError:
            pass

    async def _settle(self) -> None:
        """Wait until no batch is being read and every batch in flight is committed (or dropped)."""
        async with self._batch:
            while self._in_flight or self._committing:
                await self._wait_for_change()

    # ------------------------------------------------------------------ hand-overs
    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """aiokafka's revocation callback (every owned partition: its rebalances are eager). A
        take-over still under way is cancelled, not waited for: its partitions are being handed over
        and their next owner (this worker too) takes them over again from the changelogs, so waiting
        only held the whole group's rebalance for as long as the take-over had left (a large state:
        minutes, beyond REBALANCE_TIMEOUT_SECONDS, and the member was dropped from its group).
        Cancelled at any await it leaves what a crash leaves, and less: what it restored is not
        the stage's yet, or is forgotten below; its thread (a sum over restored state) ends on
        its own, its result unused."""
        self.handing_over = True
        self._written_by_others.clear()  # the assignment's keep_parked compares every changelog's end anyway
        if self._taking is not None and not self._taking.done():
            self._taking.cancel()
            await asyncio.wait([self._taking])
            log.info("%s hand-over: the take-over of partitions under way was cancelled", self.stage)
        self.handing_over = True  # a take-over's end clears it
        began = time.monotonic()
        try:
            await asyncio.wait_for(self._settle(), REVOKE_WAIT_SECONDS)
        except TimeoutError:
            self._unsure = True
            log.warning("%s hand-over: %d batches not committed after %.0f s; the partitions' next owner "
                        "reads them again (counted once)", self.stage, len(self._in_flight),
                        time.monotonic() - began)  # fmt: skip
        self._generation += 1
        self._in_flight.clear()
        forgotten = False
        for tp in partitions:
            committed = self.committed.pop(tp, None)
            if not self._unsure and self.park(tp.partition):
                self._parked[tp] = committed
            else:
                self._drop(tp.partition)
                forgotten = True
        self._unsure = False  # what is parked was whole; the next owner of the rest reads it again
        if forgotten:
            await self.handed_over()
        self._changed.set()

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """aiokafka's assignment callback: start taking the partitions over, and return at once.
        aiokafka heartbeats for the member only after this returns; the take-over may take longer
        than the group session (a large state). The partitions stay paused until it is done."""
        assert self.consumer is not None
        self.consumer.pause(*partitions)
        tps = sorted(partitions)
        self._taking = asyncio.get_running_loop().create_task(
            self._or_stop(f"taking partitions {[tp.partition for tp in tps]} over failed", self._take_over(tps))
        )

    async def _take_over(self, tps: list[TopicPartition]) -> None:
        """No batch is fetched or processed meanwhile: a partition's messages are never applied
        before its state is whole."""
        assert self.consumer is not None
        try:
            async with self._batch:
                await self._take_over_again_if_kafka_fails(tps)
                self.handing_over = False
                self._confirmed_at = time.monotonic()
                self.consumer.resume(*tps)
        finally:
            self._changed.set()  # the read loop looks again (taking_over is false once this returns)

    async def _take_over_again_if_kafka_fails(self, tps: list[TopicPartition]) -> None:
        """:meth:`take_over`; a Kafka error that may pass (a broker restarting, a leader not yet
        elected, a request timed out) is tried again from the start, rather than stopping the worker
        and reading every partition's state again after its restart. A revocation meanwhile cancels
        the wait. Other errors, and Kafka's beyond TAKE_OVER_SECONDS, stop the worker (_or_stop)."""
        began, pause = time.monotonic(), TAKE_OVER_PAUSES[0]
        while True:
            try:
                await self.take_over(tps)
                return
            except KafkaError as problem:
                passing = problem.retriable or isinstance(problem, (KafkaTimeoutError, KafkaConnectionError))
                if not passing or time.monotonic() + pause - began > TAKE_OVER_SECONDS:
                    raise
                log.warning("%s: taking partitions %s over failed (%s: %s); trying again in %.1f s", self.stage,
                            [tp.partition for tp in tps], type(problem).__name__, problem, pause)  # fmt: skip
            for tp in tps:
                self._drop(tp.partition)  # restored again in full
            await asyncio.sleep(pause)
            pause = min(pause * 2, TAKE_OVER_PAUSES[1])

    async def keep_parked(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        """Of the partitions just assigned, those left to take over from their changelogs. The others'
        parked state is still what Kafka holds, and is taken back (committed offset recorded, the
        consumer sought there); every other parked partition is forgotten. Kept: the group's
        committed offset is the one it had when the state was parked, and each of its changelog
        partitions ends where this stage's own writes left it — no other owner took it over
        meanwhile (a take-over writes its progress record first) nor committed anything. Without
        an answer from Kafka nothing is kept."""
        assert self.consumer is not None and self.restorer is not None
        parked = {tp: self._parked.pop(tp) for tp in tps if tp in self._parked}
        for tp in list(self._parked):
            self._drop(tp.partition)
        self._parked.clear()
        if not parked:
            return tps
        logs = [changelog for tp in parked for changelog in self.changelogs(tp.partition)]
        try:
            committed = await self.committed_now(list(parked))
            ends = await self.restorer.end_offsets(logs)
        except KafkaError as problem:
            log.info("%s: could not check the parked partitions (%s: %s); reading their changelogs again",
                     self.stage, type(problem).__name__, problem)  # fmt: skip
            committed, ends = {}, {}
        kept = []
        for tp, was in parked.items():
            own = self.changelogs(tp.partition)
            if committed.get(tp, -1) == was and all(ends.get(each) == self._log_ends.get(each) for each in own):
                await self.start_from(tp, was)
                self.unpark(tp, was)
                kept.append(tp)
            else:
                self._drop(tp.partition)
        if kept:
            log.info("%s keeps partitions %s of %s as they were (given back by the hand-over, nothing changed "
                     "meanwhile: no changelog read again)",
                     self.stage, [tp.partition for tp in kept], self.topic)  # fmt: skip
        return [tp for tp in tps if tp not in kept]

    # ------------------------------------------------------------------ another writer's records
    async def _watch_changelogs(self) -> None:
        """Every CHANGELOG_WATCH_SECONDS: owned partitions whose changelog partition ends past this
        stage's own writes, for the read loop to take over again (:meth:`_take_over_again`)."""
        while True:
            await asyncio.sleep(CHANGELOG_WATCH_SECONDS)
            found = await self._changelogs_written_by_others()
            if found:
                self._written_by_others |= found
                self._changed.set()

    async def _changelogs_written_by_others(self) -> set[TopicPartition]:
        """The owned partitions one of whose changelog partitions ends past the records this stage
        counted (:meth:`send_state` counts before sending, so its own records in flight never make
        it end past). Nothing during a hand-over or take-over, which read the ends again."""
        assert self.restorer is not None
        generation = self._generation
        logs = {each: tp for tp in self.committed for each in self.changelogs(tp.partition) if each in self._log_ends}
        if not logs or self.handing_over or self.taking_over:
            return set()
        try:
            ends = await self.restorer.end_offsets(list(logs))
        except KafkaError:
            return set()  # asked again at the next round
        if generation != self._generation or self.handing_over or self.taking_over:
            return set()
        found = set()
        for log_tp, tp in logs.items():
            past = ends.get(log_tp, 0) - self._log_ends.get(log_tp, 2**63)  # dropped meanwhile: never past
            if past > 0 and tp in self.committed:
                found.add(tp)
                log.warning("%s: changelog partition %s-%d ends %d records past this worker's own writes: another "
                            "writer appended to it (a worker frozen past its group session that ran again); taking "
                            "partition %d over again from its changelog, so that its latest records are this "
                            "owner's", self.stage, log_tp.topic, log_tp.partition, past, tp.partition)  # fmt: skip
        return found

    async def _take_over_again(self) -> None:
        """Take the partitions the watch found over again, as a hand-over that gives them back with
        their changelog moved would: once every batch in flight is committed, their state is
        dropped and restored (no batch is fetched meanwhile: this runs in the read loop). A
        revocation meanwhile hands them over instead (its assignment reads them again)."""
        handed_over = not await self._committed_unless_handed_over()
        again, self._written_by_others = self._written_by_others & set(self.committed), set()
        if handed_over or not again:
            return
        self.taken_over_again += len(again)
        async with self._batch:
            for tp in again:
                self.committed.pop(tp, None)
                self._drop(tp.partition)
            await self.handed_over()
        await self.assigned(again)  # paused, and taken over in a task of its own

    async def _committed_unless_handed_over(self) -> bool:
        """Wait until every batch in flight is committed; False if a revocation came first."""
        while (self._in_flight or self._committing) and not self.handing_over:
            await self._wait_for_change()
        return not self.handing_over

    def _drop(self, partition: int) -> None:
        """Forget a partition for good, and where its changelogs ended."""
        self.forget(partition)
        self.parked_state.pop(partition, None)
        for changelog in self.changelogs(partition):
            self._log_ends.pop(changelog, None)

    async def send_state(self, producer: Any, topic: str, partition: int, records: dict[bytes, bytes | None],
                         epoch: int | None = None) -> list[asyncio.Future[Any]]:  # fmt: skip
        """:func:`pipeline.changelog.send_records`, counted: where the changelog partition ends after
        this stage's own writes (:meth:`keep_parked`)."""
        tp = TopicPartition(topic, partition)
        if tp in self._log_ends:
            self._log_ends[tp] += len(records)
        return await send_records(producer, topic, partition, records, epoch)

    async def start_from(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> None:
        """An owned partition is read from ``committed`` (None: from its beginning), recorded as its
        last commit."""
        assert self.consumer is not None
        self.committed[tp] = committed
        if committed is not None:
            self.consumer.seek(tp, committed.offset)
        else:
            await self.consumer.seek_to_beginning(tp)

    async def read_whole(
        self, tps: list[TopicPartition], apply: Callable[[TopicPartition, bytes | None, bytes | None], None],
        late: Callable[[TopicPartition, bytes | None], None] | None = None,
    ) -> tuple[int, list[int]]:  # fmt: skip
        """Every record of ``tps`` up to their ends now, in order, to ``apply``; (records read,
        partitions empty). A record an earlier owner sent after a later one took the partition over
        (``pipeline.changelog.OwnerEpochs``) goes to ``late`` instead, which gets its key."""
        assert self.restorer is not None
        self.restorer.assign(tps)
        await self.restorer.seek_to_beginning(*tps)
        ends = await self.restorer.end_offsets(tps)
        self._log_ends.update(ends)
        pending = {tp for tp in tps if ends.get(tp, 0) > 0}
        records, epochs = 0, OwnerEpochs()
        while pending:
            fetched = await self.restorer.getmany(*pending, timeout_ms=500, max_records=RESTORE_RECORDS)
            for tp, found in fetched.items():
                for record in found:
                    if epochs.late(tp, record.headers):
                        if late is not None:
                            late(tp, record.key)
                        continue
                    apply(tp, record.key, record.value)
                records += len(found)
            for tp in list(pending):
                if await self.restorer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            await asyncio.sleep(0)  # as in _read_batches: the loop answers between steps
        self.restorer.assign([])
        return records, [tp.partition for tp in tps if ends.get(tp, 0) == 0]


def _sent(batch: InFlight) -> bool:
    return all(delivery.done() and not delivery.exception() for delivery in batch.deliveries)


class _HandOver(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: StageRunner) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.stage.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.stage.assigned(assigned)
