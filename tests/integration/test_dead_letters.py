"""End to end through the real broker: a stream of valid events with hostile messages mixed in
gives exactly the hostile ones in the dead-letter topic (original bytes, a reason header that
matches `ccpulse validate`), exact counts for the valid ones, and a worker that keeps going."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.simulation import Faults, Simulation, inject
from tests.schema_reference import reference_valid
from tests.worker_process import Deployment, counter

pytestmark = pytest.mark.integration


def test_hostile_messages_go_to_the_dead_letter_topic_and_valid_ones_are_counted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    deployment = Deployment(kafka_bootstrap, tmp_path)
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    events = Simulation(start, seed=21).events(timedelta(hours=1))
    stream = [raw for _, raw in inject(events, Faults(duplicates=0.02, invalid_rate=0.03), seed=21)]
    stream.append(b'{"event_id": "huge", "blob": "' + b"z" * 900_000 + b'"}')  # near the broker's limit
    hostile = [raw for raw in stream if not reference_valid(raw)]  # the JSON Schemas decide, not the worker
    assert 30 < len(hostile) < len(stream) // 10

    verdicts = deployment.ccpulse("validate", "-", input_bytes=b"\n".join(stream) + b"\n")
    assert verdicts.returncode == 1
    reasons = [json.loads(line)["reason"] for line in verdicts.stdout.splitlines()]
    reason_of = {raw: reason for raw, reason in zip(stream, reasons, strict=True) if reason}
    assert set(reason_of) == set(hostile)

    expected_types = Counter(json.loads(raw)["type"] for raw in stream if raw not in reason_of)
    expected_reasons = Counter(reason_of[raw] for raw in hostile) + Counter({"invalid_json": 1})  # + tombstone

    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(stream) + b"\n")
        assert produced.returncode == 0, produced.stderr.decode()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        producer.send(deployment.topic, key=b"tombstone", value=None).get(timeout=30)
        producer.close()

        def exact(samples: dict) -> bool:  # type: ignore[type-arg]
            return all(
                counter(samples, "ccpulse_events_total", type=t) == n for t, n in expected_types.items()
            ) and all(
                counter(samples, "ccpulse_events_invalid_total", reason=r) == n for r, n in expected_reasons.items()
            )

        worker.wait_for(exact, timeout=120)
        assert worker.process is not None and worker.process.poll() is None  # still running

    consumer = KafkaConsumer(f"{deployment.topic}.dlq", bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)  # fmt: skip
    dead = list(consumer)
    consumer.close()
    assert Counter(record.value for record in dead) == Counter(hostile) + Counter([None])
    for record in dead:
        headers = {name: value.decode() for name, value in record.headers}
        expected = "invalid_json" if record.value is None else reason_of[record.value]
        assert headers["error.reason"] == expected
        assert headers["error.detail"]
        assert headers["source.topic"] == deployment.topic
        assert int(headers["source.partition"]) in range(deployment.partitions)
        assert int(headers["source.offset"]) >= 0
