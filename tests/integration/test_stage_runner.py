"""The stage runner keeps its consumer in its group, against a real broker.

aiokafka's ``getmany`` returns records it has already fetched without suspending, and a send
suspends only when the producer's buffer is full: on a backlog a stage ran batch after batch and
held the worker's one event loop for seconds — the heartbeats of its three consumer groups, the
other stages and /metrics waited, and on a busy machine the broker evicted the silent members
(docs/operations.md, "Hand-overs"). A ticker on the same loop must run between any two batches.

aiokafka heartbeats for a member only once its assignment callback has returned: a take-over
inside that callback that lasted longer than the group session got the member evicted, and every
eviction brought another take-over. A take-over longer than the session must leave the member in
its group.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError
from aiokafka.structs import OffsetAndMetadata

from pipeline.settings import Settings
from pipeline.sink import SinkBatch
from pipeline.stage_runner import StageRunner
from tests.worker_process import Deployment

pytestmark = pytest.mark.integration

RECORDS, PER_BATCH = 2_000, 50  # one fetch brings them all: most batches come from aiokafka's buffer


class Crashes:
    """The runner's app: it is only asked to crash, which must not happen here."""

    def __init__(self) -> None:
        self.problems: list[BaseException] = []

    async def crash(self, problem: BaseException) -> None:
        self.problems.append(problem)


class CountingStage(StageRunner):
    """A stage whose batch takes a little CPU (as a real one does) and notes the ticker's count."""

    def __init__(self, ticks: list[int], **options: Any) -> None:
        super().__init__(**options)
        self.ticks = ticks
        self.seen_at: list[int] = []  # the ticker's count as each batch began
        self.read = 0

    async def process(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        self.seen_at.append(self.ticks[0])
        time.sleep(0.002)  # a batch's own work holds the loop, as the contacts pass does
        self.read += sum(len(records) for records in fetched.values())
        commit = {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in fetched.items()}
        self.queue(await self.rows_first(commit, SinkBatch()))

    async def take_over(self, tps: list[TopicPartition]) -> None:
        assert self.consumer is not None
        for tp in tps:
            self.committed[tp] = None
            await self.consumer.seek_to_beginning(tp)


class SlowTakeOver(CountingStage):
    """A stage whose take-over lasts longer than the group session (the loop stays free)."""

    def __init__(self, seconds: float, **options: Any) -> None:
        super().__init__([0], **options)
        self.seconds = seconds
        self.take_overs = 0

    async def take_over(self, tps: list[TopicPartition]) -> None:
        self.take_overs += 1
        await asyncio.sleep(self.seconds)
        await super().take_over(tps)


class FirstTakeOverSlow(SlowTakeOver):
    """A stage whose first take-over would last ``seconds`` (a large state); the next ones are quick."""

    def __init__(self, seconds: float, **options: Any) -> None:
        super().__init__(seconds, **options)
        self.finished_take_overs = 0

    async def take_over(self, tps: list[TopicPartition]) -> None:
        self.take_overs += 1
        if self.take_overs == 1:
            await asyncio.sleep(self.seconds)
        await CountingStage.take_over(self, tps)
        self.finished_take_overs += 1


class FailingTakeOver(CountingStage):
    """A stage whose first take-over fails with ``problem`` half-way (fault injected: a broker cannot
    be made to fail at the moment of a take-over)."""

    def __init__(self, problem: KafkaError, **options: Any) -> None:
        super().__init__([0], **options)
        self.problem = problem
        self.take_overs = 0

    async def take_over(self, tps: list[TopicPartition]) -> None:
        self.take_overs += 1
        await super().take_over(tps)
        if self.take_overs == 1:
            raise self.problem


def backlog(kafka_bootstrap: str, tmp_path: Path, name: str, partitions: int = 1) -> tuple[Settings, str]:
    """Settings for a stage (the tests' 6 s group session) and a topic of RECORDS records."""
    from kafka import KafkaAdminClient, KafkaProducer

    settings = Settings.from_env(Deployment(kafka_bootstrap, tmp_path).env(), env_file=None)
    topic = f"{settings.app_id}-{name}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}}, wait_for_metadata=True)
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=50)
    for number in range(RECORDS):
        producer.send(topic, value=f"{number}".encode(), partition=number % partitions)
    producer.flush()
    producer.close()
    return settings, topic


def test_the_lag_asked_while_the_stage_starts_is_unknown_not_a_crash(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The worker's lag timer runs from its start on; a stage's consumer exists before it has started
    (its restorer connects first), and aiokafka's ``end_offsets`` on a consumer not started raised
    AttributeError, which crashed the worker (seen in ``make bench``'s 4 workers on 2 cores,
    2026-12-07: "Crashed reason=AttributeError(\"'NoneType' object has no attribute 'end_offsets'\")")."""
    settings, topic = backlog(kafka_bootstrap, tmp_path, "lag-at-start")

    async def scenario() -> tuple[list[Any], list[Any]]:
        app = Crashes()
        stage = CountingStage([0], app=app, settings=settings, sink=None, stage="starting", topic=topic,
                              max_records=100)  # fmt: skip
        starting = asyncio.create_task(stage.start())
        while stage.consumer is None and not starting.done():
            await asyncio.sleep(0)
        during = [await stage.lag()]  # the consumer exists; its start is after the restorer's
        await starting
        deadline = time.monotonic() + 30
        after = [await stage.lag()]
        while after[-1] is None and time.monotonic() < deadline:  # known once the partition is taken over
            await asyncio.sleep(0.2)
            after.append(await stage.lag())
        await stage.stop()
        after.append(await stage.lag())  # stopped: unknown again, not a question to a closed client
        return during, after

    during, after = asyncio.run(scenario())
    assert during == [None]
    assert after[-2] is not None and after[-1] is None, after


def test_a_take_over_longer_than_the_session_keeps_the_member_in_its_group(kafka_bootstrap: str,
                                                                            tmp_path: Path) -> None:  # fmt: skip
    settings, topic = backlog(kafka_bootstrap, tmp_path, "slow-take-over")
    seconds = settings.session_timeout_seconds + 3

    async def scenario() -> tuple[SlowTakeOver, Crashes]:
        app = Crashes()
        stage = SlowTakeOver(seconds, app=app, settings=settings, sink=None, stage="slow", topic=topic,
                             max_records=PER_BATCH)  # fmt: skip
        await stage.start()
        deadline = time.monotonic() + seconds + 30
        while stage.read < RECORDS and time.monotonic() < deadline and not app.problems:
            await asyncio.sleep(0.05)
        await asyncio.sleep(settings.session_timeout_seconds)  # an eviction would show by now
        await stage.stop()
        return stage, app

    stage, app = asyncio.run(scenario())
    assert not app.problems
    assert stage.take_overs == 1, f"the member was evicted and took its partition over {stage.take_overs} times"
    assert stage.read == RECORDS


def test_a_rebalance_during_a_long_take_over_cancels_it_instead_of_holding_the_group(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A second member joins while the first is in a take-over that would last 120 s: the first
    member's revocation cancels it (before, it waited for it, and the group's rebalance with it,
    up to the 60 s rebalance timeout), and the two share the partitions within seconds."""
    settings, topic = backlog(kafka_bootstrap, tmp_path, "rebalance-during-take-over", partitions=2)

    async def scenario() -> tuple[FirstTakeOverSlow, CountingStage, Crashes, float]:
        app = Crashes()
        first = FirstTakeOverSlow(120, app=app, settings=settings, sink=None, stage="shared", topic=topic,
                                  max_records=PER_BATCH)  # fmt: skip
        await first.start()
        deadline = time.monotonic() + 30
        while first.take_overs == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert first.taking_over
        joined = time.monotonic()
        second = CountingStage([0], app=app, settings=settings, sink=None, stage="shared", topic=topic,
                               max_records=PER_BATCH)  # fmt: skip
        await second.start()
        deadline = time.monotonic() + 40
        while first.read + second.read < RECORDS and time.monotonic() < deadline and not app.problems:
            await asyncio.sleep(0.05)
        shared = time.monotonic() - joined
        await second.stop()
        await first.stop()
        return first, second, app, shared

    first, second, app, shared = asyncio.run(scenario())
    assert not app.problems
    assert first.read + second.read == RECORDS, f"read {first.read} + {second.read} in {shared:.0f} s"
    assert first.finished_take_overs >= 1 and first.read > 0 and second.read > 0  # both took a partition
    assert shared < 40


def test_a_stage_on_a_backlog_lets_the_loop_run_between_its_batches(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings, topic = backlog(kafka_bootstrap, tmp_path, "backlog")

    async def scenario() -> tuple[CountingStage, Crashes]:
        ticks, app = [0], Crashes()

        async def tick() -> None:
            while True:
                ticks[0] += 1
                await asyncio.sleep(0)

        ticker = asyncio.get_running_loop().create_task(tick())
        stage = CountingStage(ticks, app=app, settings=settings, sink=None, stage="probe", topic=topic,
                              max_records=PER_BATCH)  # fmt: skip
        await stage.start()
        deadline = time.monotonic() + 60
        while stage.read < RECORDS and time.monotonic() < deadline and not app.problems:
            await asyncio.sleep(0.05)
        await stage.stop()
        ticker.cancel()
        return stage, app

    stage, app = asyncio.run(scenario())
    assert not app.problems
    assert stage.read == RECORDS
    between = [later - earlier for earlier, later in itertools.pairwise(stage.seen_at)]
    assert len(between) >= RECORDS // PER_BATCH - 1
    assert min(between) > 0, f"the loop got no turn between {between.count(0)} of {len(between)} pairs of batches"


class BatchSizes(CountingStage):
    """A stage that notes how many records each batch held."""

    def __init__(self, **options: Any) -> None:
        super().__init__([0], **options)
        self.sizes: list[int] = []

    async def process(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        self.sizes.append(sum(len(records) for records in fetched.values()))
        await super().process(fetched)


def test_a_caught_up_stage_waits_the_live_linger_not_the_backlogs_for_a_fuller_batch(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Live traffic a record every 20 ms for 3 s: with the live linger (0.2 s) a batch holds what
    came within 0.2 s of its first record, so the 150 records come in at most ~15 batches plus the
    ones a slow machine splits; with the backlog's wait (5 s here) they would come in one."""
    from kafka import KafkaAdminClient, KafkaProducer

    settings = Settings.from_env(Deployment(kafka_bootstrap, tmp_path,
                                            extra_env={"CCPULSE_BATCH_SECONDS": "5",
                                                       "CCPULSE_LIVE_BATCH_SECONDS": "0.2"}).env(),
                                 env_file=None)  # fmt: skip
    topic = f"{settings.app_id}-live"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
    admin.close()
    records, spacing = 150, 0.02

    async def scenario() -> tuple[BatchSizes, Crashes]:
        app = Crashes()
        stage = BatchSizes(app=app, settings=settings, sink=None, stage="live", topic=topic,
                           max_records=10_000, linger=True)  # fmt: skip
        await stage.start()
        deadline = time.monotonic() + 30
        while (not stage.committed or stage.taking_over) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # live from its first record: the partition is taken over
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)

        def trickle() -> None:
            for number in range(records):
                producer.send(topic, value=f"{number}".encode())
                producer.flush()
                time.sleep(spacing)

        await asyncio.get_running_loop().run_in_executor(None, trickle)
        producer.close()
        deadline = time.monotonic() + 30
        while stage.read < records and time.monotonic() < deadline and not app.problems:
            await asyncio.sleep(0.05)
        await stage.stop()
        return stage, app

    stage, app = asyncio.run(scenario())
    assert not app.problems
    assert stage.read == records
    assert not stage.catching_up
    assert len(stage.sizes) <= 25, f"no live linger: {len(stage.sizes)} batches of {stage.sizes}"
    assert len(stage.sizes) >= 8, f"the backlog's wait, not the live one: {len(stage.sizes)} batches of {stage.sizes}"


def test_a_member_dropped_by_its_group_while_frozen_does_not_process_what_it_fetched(kafka_bootstrap: str,
                                                                                   tmp_path: Path) -> None:  # fmt: skip
    """A process frozen past its group session (a stopped container, a stalled VM; here the loop
    blocked) is dropped from its group, and when it runs again its consumer hands out records it
    fetched before it learns that: the stage must ask the group first (a commit, refused to a
    dropped member) and put the batch back, not process it as the partition's owner."""
    settings, topic = backlog(kafka_bootstrap, tmp_path, "frozen")

    async def scenario() -> tuple[CountingStage, Crashes, bool, bool]:
        app = Crashes()
        stage = CountingStage([0], app=app, settings=settings, sink=None, stage="frozen", topic=topic,
                              max_records=PER_BATCH)  # fmt: skip
        await stage.start()
        try:
            deadline = time.monotonic() + 30
            while (stage.read < RECORDS or stage.in_flight()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert stage.read == RECORDS
            await asyncio.sleep(stage._confirm_after + 0.5)  # a silence: the next batch asks the group
            member = await stage._still_member({})  # still the owner: the commit is taken
            time.sleep(settings.session_timeout_seconds + 4)  # frozen: no heartbeat, dropped from the group
            dropped = await stage._still_member({})  # asked before the consumer learns it was dropped
        finally:
            await stage.stop()
        return stage, app, member, dropped

    stage, app, member, dropped = asyncio.run(scenario())
    assert not app.problems
    assert member, "a member whose group still holds it was taken for a dropped one"
    assert not dropped, "a member dropped from its group would have processed its fetched batch"


def test_a_member_joining_takes_its_share_and_nothing_else_moves(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The stages' sticky assignment (pipeline/assignor.py): two members share four partitions, a
    third joins and takes one; the other three stay where they were (round robin deals them out
    again in member-id order, and a partition that moves is read again from its changelog)."""
    settings, topic = backlog(kafka_bootstrap, tmp_path, "sticky", partitions=4)

    async def settled(stages: list[CountingStage]) -> dict[int, set[int]]:
        deadline, last, since = time.monotonic() + 60, None, time.monotonic()
        while time.monotonic() < deadline:
            owned = {n: {tp.partition for tp in stage.committed} for n, stage in enumerate(stages)}
            whole = sorted(p for each in owned.values() for p in each) == [0, 1, 2, 3] and all(owned.values())
            if owned != last:
                last, since = owned, time.monotonic()
            elif whole and not any(stage.handing_over or stage.taking_over for stage in stages):
                if time.monotonic() - since > 2:
                    return owned
            await asyncio.sleep(0.1)
        raise AssertionError(f"the group did not settle: {last}")

    async def scenario() -> tuple[dict[int, set[int]], dict[int, set[int]], Crashes]:
        app = Crashes()
        stages = [CountingStage([0], app=app, settings=settings, sink=None, stage="sticky", topic=topic,
                                max_records=PER_BATCH) for _ in range(3)]  # fmt: skip
        try:
            for stage in stages[:2]:
                await stage.start()
            two = await settled(stages[:2])
            await stages[2].start()
            three = await settled(stages)
        finally:
            for stage in stages:
                await stage.stop()
        return two, three, app

    two, three, app = asyncio.run(scenario())
    assert not app.problems
    moved = [p for n in (0, 1) for p in two[n] - three[n]]
    assert len(moved) == 1 and three[2] == set(moved), f"two members {two}, then three {three}"


@pytest.mark.parametrize(("problem", "passes"), [(KafkaConnectionError("broker restarting"), True),
                                                 (TopicAuthorizationFailedError(), False)])  # fmt: skip
def test_a_take_over_that_kafka_fails_is_tried_again_unless_the_error_stays(
    kafka_bootstrap: str, tmp_path: Path, problem: KafkaError, passes: bool
) -> None:
    """A Kafka error that may pass (a broker restarting) makes the stage take its partitions over
    again after a pause; before, every such error stopped the worker. One that stays (not allowed
    to read the topic) still stops it, with its reason."""
    settings, topic = backlog(kafka_bootstrap, tmp_path, f"failing-take-over-{passes}")

    async def scenario() -> tuple[FailingTakeOver, Crashes]:
        app = Crashes()
        stage = FailingTakeOver(problem, app=app, settings=settings, sink=None, stage="failing", topic=topic,
                                max_records=PER_BATCH)  # fmt: skip
        await stage.start()
        deadline = time.monotonic() + 30
        while stage.read < RECORDS and time.monotonic() < deadline and not app.problems:
            await asyncio.sleep(0.05)
        await stage.stop()
        return stage, app

    stage, app = asyncio.run(scenario())
    if passes:
        assert not app.problems
        assert stage.take_overs == 2 and stage.read == RECORDS
    else:
        assert app.problems == [problem]
        assert stage.take_overs == 1 and stage.read == 0
