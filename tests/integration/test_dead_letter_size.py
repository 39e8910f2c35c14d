"""Messages as large as a topic takes, from producers other than ``ccpulse produce``: a dead letter
too large to send stopped the worker at every read of it (a partition stuck behind one message)."""

from __future__ import annotations

import time
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


def test_the_bridge_dead_letters_a_message_near_1_mib_and_goes_on(kafka_bootstrap: str, tmp_path: Path) -> None:
    """``ccpulse follow --input-topic``: a connector's message near Kafka's limit is rejected by
    the converter; its dead letter was over the bridge producer's 1,000,000 bytes, the send failed
    and the bridge stopped, to fail on the same message after every restart."""
    import signal
    import subprocess
    import sys

    from kafka import KafkaConsumer, KafkaProducer

    from pipeline.kafka_io import MAX_REQUEST_BYTES

    deployment = Deployment(kafka_bootstrap, tmp_path)
    vendor_topic = f"{deployment.topic}.twilio"
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "twilio" / "taskrouter_events.txt"
    big = b"x" * 1_040_000
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=4 * 2**20)
    for line in [big, *fixture.read_bytes().splitlines()]:
        producer.send(vendor_topic, line)
    producer.close()
    command = [sys.executable, "-m", "pipeline", "follow", "--from", "twilio-taskrouter", "--input-topic", vendor_topic]
    bridge = subprocess.Popen(command, env=deployment.env(CCPULSE_DATA_DIR=str(tmp_path / "bridge")),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    consumer = KafkaConsumer(deployment.topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000)  # fmt: skip
    try:
        offered, deadline = 0, time.monotonic() + 60
        while offered < 4 and bridge.poll() is None and time.monotonic() < deadline:
            offered += sum(b'"contact.offered"' in record.value for record in consumer)
        assert offered == 4, bridge.stderr.read().decode() if bridge.poll() is not None else "not converted in 60 s"
    finally:
        consumer.close()
        bridge.send_signal(signal.SIGTERM)
        _, errors = bridge.communicate(timeout=30)
    assert bridge.returncode == 0, errors.decode()
    cut = [(value, headers) for value, headers in dead_letters(kafka_bootstrap, f"{deployment.topic}.dlq")
           if HEADER_TRUNCATED in headers]  # fmt: skip
    assert cut == [(big[: MAX_REQUEST_BYTES - HEADROOM], cut[0][1])] and cut[0][1][HEADER_TRUNCATED] == b"1040000"
