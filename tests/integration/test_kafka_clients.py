"""Evidence for the broker version: both client libraries the project uses do everything the
pipeline needs against it: create topics, produce, consume in a group, commit and read back
committed offsets. (Faust itself is exercised end to end by test_walking_skeleton.py.)"""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.integration

MESSAGES = 300
PARTITIONS = 3


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_kafka_python_creates_produces_consumes_and_commits(kafka_bootstrap: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

    topic, group = _name("compat-kp"), _name("group")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}}, wait_for_metadata=True)
    assert topic in admin.list_topics()
    admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for number in range(MESSAGES):
        producer.send(topic, key=f"k{number % 17}".encode(), value=f"{number}".encode())
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    values = sorted(int(message.value) for message in consumer)
    consumer.commit()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    committed = sum(consumer.committed(tp) or 0 for tp in partitions)
    consumer.close()
    assert values == list(range(MESSAGES))
    assert committed == MESSAGES

    again = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    assert list(again) == []  # the group resumes after its committed offsets
    again.close()


def test_aiokafka_creates_produces_consumes_and_commits(kafka_bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic, group = _name("compat-aio"), _name("group")

    async def scenario() -> tuple[list[int], int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
        await admin.close()

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        for number in range(MESSAGES):
            await producer.send(topic, key=f"k{number % 17}".encode(), value=f"{number}".encode())
        await producer.flush()
        await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        values: list[int] = []
        try:
            while len(values) < MESSAGES:
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                values += [int(record.value) for records in batches.values() for record in records]
            await consumer.commit()
            committed = 0
            for p in range(PARTITIONS):
                committed += await consumer.committed(TopicPartition(topic, p)) or 0
        finally:
            await consumer.stop()

        again = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await again.start()
        try:
            leftover = await again.getmany(timeout_ms=3000)
        finally:
            await again.stop()
        return sorted(values), committed, sum(len(records) for records in leftover.values())

    values, committed, leftover = asyncio.run(scenario())
    assert values == list(range(MESSAGES))
    assert committed == MESSAGES
    assert leftover == 0


@pytest.mark.parametrize("watched", [True, False], ids=["watched", "unwatched"])
def test_a_lost_metadata_answer_holds_the_producer_until_the_watch_closes_its_connection(
    kafka_bootstrap: str, watched: bool
) -> None:
    """The fault (a broker's answer to one metadata request never arrives) is injected in the
    client, as the broker cannot be made to lose it on demand; everything else is real. With
    Faust's request timeout (20 minutes) the send waits for the lost answer: unwatched it has not
    gone out after 8 s; watched (limit 1 s) the connection is closed, aiokafka asks again and the
    send is acknowledged."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.conn import AIOKafkaConnection

    from pipeline.kafka_watch import MetadataWatch

    topic = _name("lost-answer")
    handle_frame = AIOKafkaConnection._handle_frame
    lost: list[str] = []

    def losing_one_metadata_answer(connection: AIOKafkaConnection, response: bytes) -> None:
        _, request, _ = connection._requests[0]
        if not lost and type(request).__name__.startswith("MetadataRequest") and topic in str(request):
            lost.append(type(request).__name__)  # the answer never arrives: the request stays waiting
            return
        handle_frame(connection, response)

    async def scenario() -> tuple[bool, list[str]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", request_timeout_ms=1_200_000)
        await producer.start()
        watch, closed = MetadataWatch(limit=1.0), []
        try:
            sent = asyncio.ensure_future(producer.send_and_wait(topic, b"a contact event"))
            return await _delivered_within(8.0, sent, watch if watched else None, producer.client, closed), closed
        finally:
            await producer.stop()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AIOKafkaConnection, "_handle_frame", losing_one_metadata_answer)
        delivered, closed = asyncio.run(scenario())
    assert lost, "the fault was not injected: no metadata request for the topic"
    if watched:
        assert delivered and len(closed) == 1, (delivered, closed)
    else:
        assert not delivered and closed == [], "the lost answer did not hold the send: the test proves nothing"


@pytest.mark.parametrize("watched", [True, False], ids=["watched", "unwatched"])
def test_a_metadata_update_nobody_starts_holds_the_producer_until_the_watch_starts_it(
    kafka_bootstrap: str, watched: bool
) -> None:
    """The second way a worker's sends were seen waiting with nothing in flight: a metadata update
    the sends wait for is pending while aiokafka's metadata task sleeps (it sleeps without answering
    when the topic list changed during a round it began on its own schedule). The state is injected
    (a pending update, the task asleep); the broker and the producer are real."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from pipeline.kafka_watch import MetadataWatch

    first, second = _name("idle-update-a"), _name("idle-update-b")

    async def scenario() -> tuple[bool, list[str]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1) for name in (first, second)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", request_timeout_ms=1_200_000)
        await producer.start()
        watch, woken = MetadataWatch(limit=1.0), []
        try:
            await producer.send_and_wait(first, b"before")  # metadata known, the task asleep
            client = producer.client
            assert not client._md_update_waiter.done() and client._md_update_fut is None
            client._md_update_fut = asyncio.get_running_loop().create_future()  # the fault
            sent = asyncio.ensure_future(producer.send_and_wait(second, b"a contact event"))
            return await _delivered_within(8.0, sent, watch if watched else None, client, woken), woken
        finally:
            await producer.stop()

    delivered, woken = asyncio.run(scenario())
    if watched:
        assert delivered and woken == ["producer: metadata update"], (delivered, woken)
    else:
        assert not delivered and woken == [], "the pending update did not hold the send: the test proves nothing"


async def _delivered_within(seconds: float, sent: asyncio.Future, watch: object, client: object, acted: list) -> bool:  # type: ignore[type-arg]
    """Whether ``sent`` is acknowledged within ``seconds``, running ``watch`` (a MetadataWatch, or
    None) on the producer's client every 0.2 s meanwhile; what the watch did goes into ``acted``."""
    for _ in range(int(seconds / 0.2)):
        await asyncio.sleep(0.2)
        if watch is not None:
            acted += watch.check({"producer": client})  # type: ignore[attr-defined]
        if sent.done():
            break
    delivered = sent.done() and sent.exception() is None
    sent.cancel()
    return delivered
