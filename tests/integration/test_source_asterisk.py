"""Asterisk's queue_log through the real broker and worker: ``ccpulse produce --from
asterisk-queue-log`` of the documented-events fixture gives the gauges that the calls' own
recorded waits and talk times give (worked out by hand below from the fixture's lines)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.worker_process import Deployment, counter

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "queue_log"


TODAY = {"window": "today", "channel": "voice"}


def settled(samples: dict) -> bool:  # type: ignore[type-arg]
    return (counter(samples, "ccpulse_events_total", type="contact.ended") == 6
            and counter(samples, "ccpulse_handled", queue="billing", **TODAY) == 2
            and counter(samples, "ccpulse_handled", queue="support", **TODAY) == 2)  # fmt: skip


def assert_the_fixture_s_gauges(samples: dict) -> None:  # type: ignore[type-arg]
    def gauge(name: str, queue: str) -> float | None:
        return samples.get((name, tuple(sorted({**TODAY, "queue": queue}.items()))))

    # support: two calls, answered after 12 s and 3 s, talked 78 s and 147 s
    assert counter(samples, "ccpulse_offered", queue="support", **TODAY) == 2
    assert counter(samples, "ccpulse_answered_in_sl", queue="support", **TODAY) == 2
    assert gauge("ccpulse_asa_seconds", "support") == 7.5
    assert gauge("ccpulse_aht_seconds", "support") == 112.5
    # billing: four calls; two answered (recorded holds 30 s and 5 s; talked 119 s and 95 s before
    # their transfers), one timed out, one left an empty queue: neither abandoned
    assert counter(samples, "ccpulse_offered", queue="billing", **TODAY) == 4
    assert counter(samples, "ccpulse_answered", queue="billing", **TODAY) == 2
    assert counter(samples, "ccpulse_abandoned", queue="billing", **TODAY) == 0
    assert gauge("ccpulse_asa_seconds", "billing") == 17.5
    assert gauge("ccpulse_aht_seconds", "billing") == 107.0
    assert gauge("ccpulse_service_level_ratio", "billing") == 0.5  # 30 s is over the 20 s threshold
    # "Support Desk" (a name the contract's pattern does not take): one call abandoned after 5 s
    desk = [dict(labels)["queue"] for (name, labels) in samples if name == "ccpulse_abandoned"
            and dict(labels)["queue"].startswith("Support_Desk-")]  # fmt: skip
    assert desk and counter(samples, "ccpulse_abandoned", queue=desk[0], **TODAY) == 1
    assert counter(samples, "ccpulse_events_total", type="contact.offered") == 7
    assert counter(samples, "ccpulse_events_invalid_total", reason="schema") == 0


def test_a_queue_log_gives_the_gauges_of_its_calls(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "--from", "asterisk-queue-log", str(FIXTURE))
        assert produced.returncode == 0, produced.stderr.decode()
        assert "0 rejected" in produced.stderr.decode()
        assert_the_fixture_s_gauges(worker.settled(settled))


def test_follow_survives_rotation_and_a_kill_and_counts_every_call_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    """follow tails a queue_log; it is SIGKILLed; more lines are written, the file is rotated
    (logrotate's rename and create) while it is down; started again, it finishes the old file from
    its saved position and reads the new one, which grows and is rotated again while followed: the
    gauges are the whole file's, once."""
    lines = FIXTURE.read_bytes().splitlines(keepends=True)
    log_file = tmp_path / "queue_log"
    log_file.write_bytes(b"".join(lines[:12]) + b"not a queue_log line\n")
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    command = [sys.executable, "-m", "pipeline", "follow", "--from", "asterisk-queue-log", str(log_file)]
    env = deployment.env(CCPULSE_DATA_DIR=str(tmp_path / "follow"))
    with deployment.worker() as worker:
        follow = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            worker.wait_for(lambda s: counter(s, "ccpulse_events_total", type="contact.offered") == 2)
            time.sleep(1.5)  # the position is saved every second
        finally:
            follow.kill()  # no clean stop: lines after the saved position come again
            follow.wait(30)
        with open(log_file, "ab") as old:
            old.write(b"".join(lines[12:20]))
        log_file.rename(tmp_path / "queue_log.1")
        log_file.write_bytes(b"".join(lines[20:24]))
        follow = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(2)
            with open(log_file, "ab") as new:
                new.write(b"".join(lines[24:27]))  # the log goes on growing
            time.sleep(2)
            log_file.rename(tmp_path / "queue_log.2")  # and is rotated while followed
            log_file.write_bytes(b"".join(lines[27:]))
            assert_the_fixture_s_gauges(worker.settled(settled))
        finally:
            follow.send_signal(signal.SIGTERM)
            output, errors = (part.decode() for part in follow.communicate(timeout=30))
        assert follow.returncode == 0, errors
        assert "asterisk-queue-log:" in errors and "resumed at byte" in output and "was rotated" in output
    dead = dead_letters(kafka_bootstrap, f"{deployment.topic}.dlq")
    where = str(len(b"".join(lines[:12]))).encode()
    assert dead and set(dead) == {(b"not a queue_log line", b"unreadable", where)}  # its bytes, why, where
    assert len(dead) <= 2  # sent again after the kill at most once


def dead_letters(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, bytes]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)  # fmt: skip
    try:
        return [(m.value, dict(m.headers)["error.reason"], dict(m.headers).get("source.offset", b"")) for m in consumer]
    finally:
        consumer.close()


QUEUE_LOG_GAUGES = {"ccpulse_offered", "ccpulse_answered", "ccpulse_answered_in_sl", "ccpulse_abandoned",
                    "ccpulse_short_abandoned", "ccpulse_handled", "ccpulse_service_level_ratio", "ccpulse_asa_seconds",
                    "ccpulse_abandon_ratio", "ccpulse_queue_waiting"}  # fmt: skip


def voice_gauges(samples: dict) -> dict:  # type: ignore[type-arg]
    return {key: value for key, value in samples.items() if dict(key[1]).get("channel") == "voice"
            and (key[0] in QUEUE_LOG_GAUGES or key[0] == "ccpulse_aht_seconds")}  # fmt: skip


def test_a_simulated_queue_log_followed_gives_the_gauges_of_the_same_calls_sent_directly(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Simulator → ``simulate --as asterisk-queue-log`` → ``follow`` → broker → worker, beside the
    simulator's own contract events of the same voice calls sent directly (``ccpulse produce``),
    their times cut to the whole seconds Asterisk logs: every count, service level, ASA,
    abandonment and waiting gauge of every voice queue and window is equal; AHT is within a second
    (queue_log records a call's handle time in whole seconds). Sent with their times uncut, the
    counts of the windows and the ASA differ: the comparison is not blind."""
    from datetime import UTC, datetime, timedelta

    import orjson

    from pipeline.simulation import Simulation
    from pipeline.sources.asterisk_out import queue_log_lines

    events = list(Simulation(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), seed=21).events(timedelta(hours=2)))
    voice = {e["contact_id"] for e in events if e["type"] == "contact.offered" and e["channel"] == "voice"}
    calls = [e for e in events if e.get("contact_id") in voice and str(e["type"]).startswith("contact.")]
    direct = tmp_path / "direct.jsonl"
    direct.write_bytes(b"".join(orjson.dumps({**e, "occurred_at": e["occurred_at"][:19] + "Z"}) + b"\n" for e in calls))
    log_file = tmp_path / "queue_log"
    log_file.write_text("".join(line + "\n" for line in queue_log_lines(events)))
    assert len(voice) > 500
    gauges = {}
    for way in ("direct", "follow"):
        deployment = Deployment(kafka_bootstrap, tmp_path / way, extra_env={"CCPULSE_CLOCK": "event"})
        (tmp_path / way).mkdir()
        with deployment.worker() as worker:
            if way == "direct":
                produced = deployment.ccpulse("produce", str(direct))
                assert produced.returncode == 0, produced.stderr.decode()
            else:
                follow = subprocess.Popen([sys.executable, "-m", "pipeline", "follow", "--from", "asterisk-queue-log",
                                           str(log_file)], env=deployment.env(), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE)  # fmt: skip
            try:
                samples = worker.settled(lambda s: counter(s, "ccpulse_events_total",
                                                           type="contact.offered") == len(voice))  # fmt: skip
            finally:
                if way == "follow":
                    follow.send_signal(signal.SIGTERM)
                    follow.communicate(timeout=30)
            gauges[way] = voice_gauges(samples)
    exact = {key: value for key, value in gauges["direct"].items() if key[0] != "ccpulse_aht_seconds"}
    assert exact and {key: value for key, value in gauges["follow"].items() if key[0] != "ccpulse_aht_seconds"} == exact
    handle_times = [(key, value) for key, value in gauges["direct"].items() if key[0] == "ccpulse_aht_seconds"]
    assert handle_times and all(abs(gauges["follow"][key] - value) < 1 for key, value in handle_times)
