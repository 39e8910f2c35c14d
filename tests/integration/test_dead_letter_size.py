"""Messages as large as a topic takes, from producers other than ``ccpulse produce``: a dead letter
too large to send stopped the worker at every read of it (a partition stuck behind one message)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.dead_letters import HEADER_REASON, HEADER_TRUNCATED, HEADROOM
from pipeline.simulation import Simulation
from tests.worker_process import Deployment, counter

pytestmark = pytest.mark.integration


def events_counted(samples: dict) -> float:  # type: ignore[type-arg]
    return sum(value for (name, _), value in samples.items() if name == "ccpulse_events_total")


def dead_letters(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, fetch_max_bytes=8 * 2**20)  # fmt: skip
    try:
        return [(record.value, dict(record.headers)) for record in consumer]
    finally:
        consumer.close()


def send_big_then_valid(deployment: Deployment, bootstrap: str, big: bytes) -> int:
    """The large message, then an hour of valid traffic after it (keyed as ``ccpulse produce``
    keys it); the number of valid events."""
    from datetime import UTC, datetime, timedelta

    import orjson
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 2**20)
    producer.send(deployment.topic, key=b"big", value=big).get(timeout=30)
    producer.close()
    lines = [orjson.dumps(event) for event in Simulation(datetime(2026, 11, 23, 9, tzinfo=UTC), seed=5)
             .events(timedelta(minutes=30))]  # fmt: skip
    produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines) + b"\n")
    assert produced.returncode == 0, produced.stderr.decode()
    return len(lines)


@pytest.mark.parametrize("older_topic", [False, True], ids=["created by the worker", "created before, unset"])
def test_a_message_as_large_as_kafka_takes_goes_to_the_dead_letters_unchanged(kafka_bootstrap: str, tmp_path: Path,
                                                                               older_topic: bool) -> None:  # fmt: skip
    from kafka.admin import KafkaAdminClient, NewTopic

    deployment = Deployment(kafka_bootstrap, tmp_path)
    if older_topic:  # a dead-letter topic of Kafka's defaults (~1 MiB): the worker sets it at start
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        admin.create_topics([NewTopic(f"{deployment.topic}.dlq", 1, 1)])
        admin.close()
    big = b'{"event_id": "huge", "blob": "' + b"z" * 1_040_000 + b'"}'  # the input topic takes up to 1,048,588
    with deployment.worker() as worker:
        valid = send_big_then_valid(deployment, kafka_bootstrap, big)
        worker.wait_for(lambda s: events_counted(s) == valid, timeout=120)
        assert counter(worker.scrape(), "ccpulse_events_invalid_total", reason="too_large") == 1
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail(30)
    [(value, headers)] = dead_letters(kafka_bootstrap, f"{deployment.topic}.dlq")
    assert value == big and headers[HEADER_REASON] == b"too_large" and HEADER_TRUNCATED not in headers


def test_a_message_larger_than_the_dead_letter_topic_takes_goes_there_cut_short(kafka_bootstrap: str,
                                                                                tmp_path: Path) -> None:  # fmt: skip
    from kafka.admin import KafkaAdminClient, NewTopic

    deployment = Deployment(kafka_bootstrap, tmp_path)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)  # an operator's dead-letter topic, smaller
    admin.create_topics([NewTopic(f"{deployment.topic}.dlq", 1, 1, topic_configs={"max.message.bytes": "300000"})])
    admin.close()
    big = b'{"event_id": "huge", "blob": "' + b"z" * 500_000 + b'"}'
    with deployment.worker() as worker:
        valid = send_big_then_valid(deployment, kafka_bootstrap, big)
        worker.wait_for(lambda s: events_counted(s) == valid, timeout=120)
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail(30)
    [(value, headers)] = dead_letters(kafka_bootstrap, f"{deployment.topic}.dlq")
    assert value == big[: 300_000 - HEADROOM - len(b"big")]  # room for its headers and its key
    assert headers[HEADER_TRUNCATED] == str(len(big)).encode() and headers[HEADER_REASON] == b"too_large"
