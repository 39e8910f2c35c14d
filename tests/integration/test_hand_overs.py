"""Hand-overs that give a worker its partitions back (pipeline/stage_runner.py, "state kept across a
hand-over"): the state it parked is used again only when Kafka still holds what it held, and every
count and table stays exact either way.

- A member of another kind joins each of the worker's three groups (subscribed to another topic:
  the worker keeps its partitions) and leaves again, while traffic arrives: each stage keeps its
  partitions without reading a changelog.
- The worker is frozen (SIGSTOP) past its group session: a second worker takes every partition
  over and counts traffic meanwhile; thawed, the first worker parks its stale state at the
  revocation and must read the changelogs again for the partitions it gets back, not keep it."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer

from pipeline.changelog import EPOCH_HEADER, record_epoch
from pipeline.core.targets import Targets
from pipeline.topology import state_topic
from tests.gauges import agents_differences, expected_samples, model_of, simulated
from tests.integration.test_clickhouse import gauge_problems, wait_for_tables
from tests.integration.test_metrics_end_to_end import HOURS, MESSY, wait_until_exact
from tests.worker_process import STAGES, Deployment, WorkerProcess, caught_up

pytestmark = pytest.mark.integration

KEPT = {stage: f"{stage} keeps partitions" for stage in STAGES}  # the log's line when a stage keeps them
RESTORED = "contacts pass: restored"
WRITTEN_BY_OTHERS = "past this worker's own writes"  # the log's line when a changelog's watch finds another writer


def visit(bootstrap: str, deployment: Deployment, stay: threading.Event, joined: threading.Event) -> None:
    """A member in each of the worker's groups, subscribed to the dead-letter topic (the worker's
    partitions stay the worker's), until ``stay`` is cleared."""

    async def members() -> None:
        visitors = [AIOKafkaConsumer(deployment.topic + ".dlq", bootstrap_servers=bootstrap,
                                     group_id=f"{deployment.app_id}-{stage}", session_timeout_ms=6000)
                    for stage in STAGES]  # fmt: skip
        for visitor in visitors:
            await visitor.start()
        joined.set()
        while stay.is_set():
            await asyncio.sleep(0.2)
        for visitor in visitors:
            await visitor.stop()

    asyncio.run(members())


def scenario(seed: int, bootstrap: str, root: Path) -> tuple[list[bytes], Targets, dict, Deployment, list[list[bytes]]]:  # type: ignore[type-arg]
    """Simulated traffic with its faults, the model's gauges, a deployment reading small batches
    (hand-overs land mid-backlog), and the traffic in three parts."""
    lines = simulated(HOURS, seed=seed, faults=MESSY)
    targets = Targets()
    expected, _ = model_of(lines, targets)
    deployment = Deployment(bootstrap, root, extra_env={"CCPULSE_CLOCK": "event", "CCPULSE_BATCH_SIZE": "400"})
    return (
        lines,
        targets,
        expected,
        deployment,
        [lines[i * len(lines) // 3 : (i + 1) * len(lines) // 3] for i in range(3)],
    )


def produce(deployment: Deployment, lines: list[bytes]) -> None:
    produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines) + b"\n")
    assert produced.returncode == 0, produced.stderr.decode()


def taken_over_again(worker: WorkerProcess) -> dict[str, float]:
    """``ccpulse_changelog_taken_over_again_total`` per stage."""
    found = worker.scrape("ccpulse_changelog_taken_over_again_total")
    return {dict(labels)["stage"]: value for (_, labels), value in found.items()}


def log_of(worker: WorkerProcess, since: int = 0) -> str:
    return worker.log_path.read_text(errors="replace")[since:]


def test_a_hand_over_that_gives_the_partitions_back_keeps_their_state(kafka_bootstrap: str, tmp_path: Path) -> None:
    lines, targets, expected, deployment, parts = scenario(71, kafka_bootstrap, tmp_path)
    worker = deployment.worker().start()
    try:
        produce(deployment, parts[0])
        worker.wait_for(caught_up, timeout=120)
        stay, joined = threading.Event(), threading.Event()
        stay.set()
        visitor = threading.Thread(target=visit, args=(kafka_bootstrap, deployment, stay, joined))
        visitor.start()
        try:
            assert joined.wait(60), "the visiting members did not join"
            produce(deployment, parts[1])  # while the groups hand over
            time.sleep(3)
        finally:
            stay.clear()
            visitor.join(60)
        produce(deployment, parts[2])
        wait_until_exact([worker], expected_samples(expected, targets), timeout=180)
        assert agents_differences(worker.get_json("/api/agents"), lines, targets) == []
        wait_for_tables(worker, lines, targets, timeout=180)
        assert gauge_problems(worker, lines, targets) == []
        found = log_of(worker)
        assert [stage for stage, line in KEPT.items() if line not in found] == [], worker.log_tail(30)
        assert WRITTEN_BY_OTHERS not in found  # its own writes, counted: the changelogs' watch found no other
        assert taken_over_again(worker) == {"ingest": 0, "issues": 0}
    finally:
        worker.stop()


def test_state_parked_while_another_worker_owned_the_partitions_is_read_again(kafka_bootstrap: str,
                                                                              tmp_path: Path) -> None:  # fmt: skip
    lines, targets, expected, deployment, parts = scenario(72, kafka_bootstrap, tmp_path)
    first = deployment.worker("a").start()
    second: WorkerProcess | None = None
    try:
        produce(deployment, parts[0])
        first.wait_for(caught_up, timeout=120)
        assert first.process is not None
        os.kill(first.process.pid, signal.SIGSTOP)  # silent past its session (6 s): evicted from every group
        try:
            second = deployment.worker("b").start()
            second.wait_for(lambda s: s.get(("ccpulse_assigned_partitions", ())) == deployment.partitions, timeout=90)
            produce(deployment, parts[1])  # counted by the second worker alone
            second.wait_for(caught_up, timeout=120)
            thawed_at = len(log_of(first))
        finally:
            os.kill(first.process.pid, signal.SIGCONT)
        produce(deployment, parts[2])
        wait_until_exact([first, second], expected_samples(expected, targets), timeout=180)
        first.wait_for(lambda s: s.get(("ccpulse_assigned_partitions", ()), 0) > 0, timeout=90)
        # its first take-over after the thaw read every partition again: the second worker wrote to
        # every changelog meanwhile (a later hand-over may keep what this one read)
        after = log_of(first, thawed_at)
        owns, kept = after.find("ingest owns input partitions"), after.find(KEPT["ingest"])
        assert owns >= 0 and RESTORED in after[:owns], after[-3000:]
        assert kept < 0 or kept > owns, after[-3000:]
        second.stop()  # the first worker takes every partition (its own kept or read again, the rest read)
        second = None
        # (the tables are not checked: each worker wrote its rows into an embedded engine of its own)
        wait_until_exact([first], expected_samples(expected, targets), timeout=180)
        assert agents_differences(first.get_json("/api/agents"), lines, targets) == []
    finally:
        first.stop()
        if second is not None:
            second.stop()


def changelog_of(deployment: Deployment) -> list[tuple[int, bytes, bytes | None, int | None]]:
    """Every record of the contacts pass's changelog: (partition, key, value, the writer's epoch)."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as Partition

    topic = state_topic(deployment.app_id)
    consumer = KafkaConsumer(bootstrap_servers=deployment.bootstrap, enable_auto_commit=False)
    try:
        tps = [Partition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends, found = consumer.end_offsets(tps), []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "the changelog was not read to its end within 60 s"
            for tp, records in consumer.poll(timeout_ms=500).items():
                found += [(tp.partition, r.key, r.value, record_epoch(r.headers)) for r in records]
        return found
    finally:
        consumer.close()


def test_records_a_frozen_owner_sends_after_the_next_took_over_are_not_restored(kafka_bootstrap: str,
                                                                                 tmp_path: Path) -> None:  # fmt: skip
    # What a worker frozen past its group session sends when it runs again: records of an earlier
    # epoch, after the next owner's. Injected (the freeze cannot be timed to the records its Kafka
    # client holds): owner 1's first record of each key (a contact offered and waiting, an agent's
    # first state and hour, a partition's first progress), sent again with owner 1's epoch once
    # owner 2 has taken every partition over.
    lines, targets, expected, deployment, parts = scenario(73, kafka_bootstrap, tmp_path)
    with deployment.worker("a") as first:
        produce(deployment, parts[0])
        first.settled()
    written = changelog_of(deployment)
    assert written and all(epoch is not None for *_, epoch in written)  # every record says its owner
    late: dict[tuple[int, bytes], tuple[bytes | None, int | None]] = {}
    for partition, key, value, epoch in written:
        late.setdefault((partition, key), (value, epoch))
    second = deployment.worker("b").start()
    try:
        produce(deployment, parts[1])
        second.settled()
        producer = KafkaProducer(bootstrap_servers=deployment.bootstrap)
        for (partition, key), (value, epoch) in late.items():
            producer.send(state_topic(deployment.app_id), key=key, value=value, partition=partition,
                          headers=[(EPOCH_HEADER, str(epoch).encode())])  # fmt: skip
        producer.flush()
        producer.close()
        owner_1 = {epoch for _, epoch in late.values()}

        def still_late() -> list[tuple[int, bytes]]:
            latest = {(partition, key): epoch for partition, key, _, epoch in changelog_of(deployment)}
            return [at for at in late if latest[at] in owner_1]

        # the owner finds them while it runs (its changelogs' watch) and takes the partitions over
        # again: the latest record of every key is its own before compaction can reach them
        assert still_late()
        deadline = time.monotonic() + 60
        while still_late():
            assert time.monotonic() < deadline, f"still the latest after 60 s: {still_late()[:5]} {second.log_tail(30)}"
            time.sleep(1)
        assert WRITTEN_BY_OTHERS in log_of(second), second.log_tail(30)
        assert taken_over_again(second)["ingest"] >= 1  # the late records went to the contacts pass's changelog
        produce(deployment, parts[2][: len(parts[2]) // 2])
        second.kill()  # restored from the changelog: the late records are not, and their keys are written again
        second = deployment.worker("b").start()
        produce(deployment, parts[2][len(parts[2]) // 2 :])
        wait_until_exact([second], expected_samples(expected, targets), timeout=180)
        assert "were sent by an earlier owner" in log_of(second), second.log_tail(30)
        assert not still_late()  # compaction keeps a later owner's record
    finally:
        second.stop()
