"""TaskRouter's events through the real broker and worker, both ways they arrive:

- callbacks posted to the worker: signed requests are converted and counted, unsigned or wrongly
  signed ones get 403 and are counted, a broken one goes to the dead-letter topic, and a worker
  SIGKILLed between a call's acceptance and its end finishes it exactly after its restart;
- Event Streams records on a Kafka topic, bridged by ``ccpulse follow --input-topic``: a bridge
  SIGKILLed between the two finishes it exactly too (the converter's journal).

Either way the fixture's gauges are the ones its events' own times give (worked out below)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from pipeline.sources.twilio import signature
from tests.integration.test_source_asterisk import dead_letters
from tests.worker_process import Deployment, WorkerProcess, counter

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "twilio" / "taskrouter_events.txt"
TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"  # a test account's auth token
PATH = "/sources/twilio-taskrouter"
TODAY = {"window": "today"}


def post(worker: WorkerProcess, line: bytes, token: str | None = TOKEN) -> int:
    """Post one fixture line as TaskRouter would: form-encoded callbacks signed over the URL and
    the sorted parameters; Event Streams JSON signed over the URL with its body's SHA-256."""
    url = worker.url + PATH
    is_json = line[:1] in (b"[", b"{")
    if is_json:
        url += f"?bodySHA256={hashlib.sha256(line).hexdigest()}"
    headers = {"Content-Type": "application/json" if is_json else "application/x-www-form-urlencoded"}
    if token is not None:
        params = None if is_json else parse_qsl(line.decode(), keep_blank_values=True)
        headers["X-Twilio-Signature"] = signature(token, url, params)
    request = urllib.request.Request(url, data=line, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def settled(worker: WorkerProcess) -> dict:  # type: ignore[type-arg]
    """The samples once every event is counted and has reached the board (``WorkerProcess.settled``:
    CI, 2026-12-07, a scrape paired the last count with a lag of 0 from before the social contact's
    handle time reached the board)."""
    return worker.settled(lambda s: counter(s, "ccpulse_events_total", type="contact.ended") == 3)  # type: ignore[no-any-return]


def assert_the_fixture_s_gauges(samples: dict) -> None:  # type: ignore[type-arg]
    def gauge(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted({**TODAY, **labels}.items()))))

    support = {"queue": "support", "channel": "voice"}
    assert counter(samples, "ccpulse_offered", **TODAY, **support) == 2  # the answered call, the timed-out one
    assert counter(samples, "ccpulse_answered", **TODAY, **support) == 1
    assert counter(samples, "ccpulse_abandoned", **TODAY, **support) == 0  # a workflow timeout is no abandon
    assert gauge("ccpulse_asa_seconds", **support) == 15.25
    assert gauge("ccpulse_aht_seconds", **support) == 210.0  # 180 s talk + 30 s wrap-up, across the kill
    social = {"queue": "chat_sales", "channel": "social"}
    assert gauge("ccpulse_aht_seconds", **social) == 600.0
    desk = [dict(labels)["queue"] for (name, labels) in samples
            if name == "ccpulse_abandoned" and dict(labels)["queue"].startswith("Support_Desk-")]  # fmt: skip
    assert desk and counter(samples, "ccpulse_abandoned", queue=desk[0], channel="voice", **TODAY) == 1


def test_signed_callbacks_count_unsigned_ones_are_refused_and_a_kill_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    lines = FIXTURE.read_bytes().splitlines()
    accepted_at = next(i for i, line in enumerate(lines) if b"EventType=reservation.accepted" in line) + 1
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event",
                                                                  "CCPULSE_TWILIO_AUTH_TOKEN": TOKEN})  # fmt: skip
    worker = deployment.worker()
    with worker:
        assert post(worker, lines[0], token=None) == 403  # unsigned
        assert post(worker, lines[0], token="another account's token") == 403
        for line in lines[:accepted_at]:  # up to the call's acceptance
            assert post(worker, line) == 204
        worker.wait_for(lambda s: counter(s, "ccpulse_events_total", type="contact.answered") == 1)
        samples = worker.scrape()
        assert counter(samples, "ccpulse_source_requests_total", source="twilio-taskrouter", verdict="forbidden") == 2
        worker.kill()  # the converter knows when the call was accepted: its journal must keep it
        worker.start()
        for line in lines[accepted_at:]:
            assert post(worker, line) == 204
        samples = settled(worker)

    assert_the_fixture_s_gauges(samples)
    verdicts = {verdict: counter(samples, "ccpulse_source_requests_total", source="twilio-taskrouter", verdict=verdict)
                for verdict in ("accepted", "skipped", "rejected", "forbidden")}  # fmt: skip
    # after the restart (counters start again): the lines after the acceptance
    assert verdicts["rejected"] == 2 and verdicts["forbidden"] == 0
    dead = dead_letters(kafka_bootstrap, f"{deployment.topic}.dlq")
    assert {reason for _, reason, _ in dead} == {b"unreadable", b"bad_event"}
    assert b"this is not a callback" in {value for value, _, _ in dead}


def test_without_a_token_the_worker_takes_no_callbacks(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    with deployment.worker() as worker:
        assert post(worker, FIXTURE.read_bytes().splitlines()[0]) == 404


def test_the_bridge_reads_a_topic_of_taskrouter_events_and_a_kill_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """``ccpulse follow --from twilio-taskrouter --input-topic``: the fixture's records on a topic
    of their own (as a connector writes Event Streams deliveries, callbacks as they were posted);
    the bridge is SIGKILLed after the call's acceptance, the rest is written while it is down."""
    from kafka import KafkaProducer

    lines = FIXTURE.read_bytes().splitlines()
    accepted_at = next(i for i, line in enumerate(lines) if b"EventType=reservation.accepted" in line) + 1
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    vendor_topic = f"{deployment.topic}.twilio"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")

    def write(part: list[bytes]) -> None:
        for line in part:
            producer.send(vendor_topic, line)
        producer.flush()

    command = [sys.executable, "-m", "pipeline", "follow", "--from", "twilio-taskrouter", "--input-topic", vendor_topic]
    env = deployment.env(CCPULSE_DATA_DIR=str(tmp_path / "bridge"))
    with deployment.worker() as worker:
        write(lines[:accepted_at])
        bridge = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            worker.wait_for(lambda s: counter(s, "ccpulse_events_total", type="contact.answered") == 1)
            time.sleep(1)  # its journal follows the acknowledgement
        finally:
            bridge.kill()
            bridge.wait(30)
        write(lines[accepted_at:])
        bridge = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            samples = settled(worker)
        finally:
            bridge.send_signal(signal.SIGTERM)
            output, errors = bridge.communicate(timeout=30)
        producer.close()
    assert bridge.returncode == 0, errors.decode()
    assert "resumed after" in output.decode()  # the journal's positions, not the topic from its start
    assert "reservation.accepted again 1" in errors.decode()  # the retried callback: the state knew the call
    assert_the_fixture_s_gauges(samples)
    assert counter(samples, "ccpulse_events_total", type="contact.offered") == 4
    dead = dead_letters(kafka_bootstrap, f"{deployment.topic}.dlq")
    assert {reason for _, reason, _ in dead} == {b"unreadable", b"bad_event"} and len(dead) == 2  # once each
