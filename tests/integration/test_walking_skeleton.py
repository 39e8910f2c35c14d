"""End to end through the real broker: ccpulse produce -> Kafka -> ccpulse worker -> /metrics.

The expected counts are computed here from the input lines with the standard library, not with
the pipeline's own code, and /metrics must equal them exactly: no loss, no double count, even
across SIGKILLs of the worker mid-stream.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.simulation import Simulation
from tests.schema_reference import reference_valid
from tests.worker_process import Deployment, counter

pytestmark = pytest.mark.integration

HOSTILE_LINES = [
    b"{not json",
    b'{"type": "contact.teleported", "event_id": "x1"}',
    b"[1, 2, 3]",
    b'"just a string"',
]


def simulated_lines(hours: float, seed: int) -> list[bytes]:
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    return [orjson.dumps(event) for event in Simulation(start, seed=seed).events(timedelta(hours=hours))]


def expected_counts(lines: list[bytes]) -> Counter[str]:
    """Valid events by type, as the JSON Schemas (not the worker's own code) judge validity."""
    return Counter(json.loads(line)["type"] for line in lines if reference_valid(line))


def matches(expected: Counter[str], invalid: int):  # type: ignore[no-untyped-def]
    def check(samples: dict) -> bool:
        counted = {t: counter(samples, "ccpulse_events_total", type=t) for t in expected}
        invalid_seen = sum(v for (name, _), v in samples.items() if name == "ccpulse_events_invalid_total")
        return counted == {t: float(n) for t, n in expected.items()} and invalid_seen == invalid

    return check


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Deployment:
    return Deployment(kafka_bootstrap, tmp_path)


def test_produced_events_are_counted_exactly_on_metrics(deployment: Deployment) -> None:
    lines = simulated_lines(hours=1, seed=7)
    assert len(lines) > 2000
    feed = lines[:1000] + HOSTILE_LINES + lines[1000:]
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(feed) + b"\n")
        assert produced.returncode == 0, produced.stderr.decode()
        assert f"sent {len(feed)} events".encode() in produced.stdout

        expected = expected_counts(feed)
        samples = worker.wait_for(matches(expected, invalid=len(HOSTILE_LINES)), timeout=90)
        assert sum(counter(samples, "ccpulse_events_total", type=t) for t in expected) == len(lines)
        assert counter(samples, "ccpulse_assigned_partitions") == deployment.partitions

        # /metrics?name[]=…: those samples alone, the same values (everything is counted by now)
        asked = {"ccpulse_events_total", "ccpulse_assigned_partitions"}
        only = worker.scrape(*sorted(asked))
        assert only == {key: value for key, value in worker.scrape().items() if key[0] in asked}
        assert {name for name, _ in only} == asked


def test_counts_stay_exact_when_the_worker_is_killed_mid_stream(deployment: Deployment) -> None:
    lines = simulated_lines(hours=1, seed=11)
    chunks = [lines[i::3] for i in range(3)]
    worker = deployment.worker().start()
    try:
        for chunk in chunks:
            produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(chunk) + b"\n")
            assert produced.returncode == 0, produced.stderr.decode()
            # Let it process some of the chunk, then kill it before it can commit cleanly.
            worker.wait_for(lambda s: sum(v for (n, _), v in s.items() if n == "ccpulse_events_total") > 0)
            worker.kill()
            worker = deployment.worker().start()
        worker.wait_for(matches(expected_counts(lines), invalid=0), timeout=120)
    finally:
        worker.stop()


def test_a_fresh_worker_creates_its_stage_topics_before_it_joins(deployment: Deployment) -> None:
    """The stages' topics exist before Faust's consumer joins: a topic missing then is left out of
    the first assignment until the consumer's next metadata refresh (15 s), its stage idles, and its
    lag read 0 meanwhile ("caught up"). Seen on a 2-core machine in most fresh starts under load."""
    with deployment.worker() as worker:
        worker.wait_for(
            lambda s: (
                {dict(labels).get("stage") for (name, labels) in s if name == "ccpulse_consumer_lag"}
                >= {"ingest", "issues", "board"}
            ),
            timeout=30,
        )
        with urllib.request.urlopen(f"{worker.url}/status", timeout=5) as response:
            assert json.loads(response.read())["owned_partitions"]["board"] == [0, 1, 2, 3]
        log = worker.log_path.read_text(errors="replace").splitlines()
        created = next(i for i, line in enumerate(log) if "created topics" in line)
        joined = next(i for i, line in enumerate(log) if "_on_partitions_assigned" in line)
        for topic in (f"{deployment.app_id}-issue-updates", f"{deployment.app_id}-reports", deployment.topic):
            assert f"'{topic}'" in log[created]
        assert any(f"'{deployment.app_id}-contact-state'" in line for line in log[created:joined])
        assert created < joined


def test_an_upgrade_from_the_faust_contacts_stage_keeps_the_contacts_it_held(kafka_bootstrap: str,
                                                                             tmp_path: Path) -> None:  # fmt: skip
    """A contact offered before the upgrade (its state only in the old `<app>-contacts-changelog`,
    as the Faust contacts stage wrote it) and answered after it counts as offered and answered."""
    import msgspec

    from pipeline.core.contract import check
    from pipeline.core.engine import ContactRecord, contact_apply
    from pipeline.kafka_io import EventSender, ensure_topics
    from pipeline.settings import Settings

    def event(kind: str, seconds: int, **fields: object) -> bytes:
        return orjson.dumps({"event_id": f"up-{kind}", "type": f"contact.{kind}", "schema_version": 1,
                             "occurred_at": f"2026-11-23T10:00:{seconds:02d}Z", "contact_id": "c-upgrade",
                             **fields})  # fmt: skip

    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    offered = event("offered", 0, channel="voice", queue="upgrade_q", customer_id="k")
    answered = event("answered", 20, agent_id="a1")
    record = ContactRecord()
    verdict = check(offered)
    assert verdict.event is not None
    contact_apply(record, verdict.event, "0:0")
    settings = Settings.from_env(deployment.env(), env_file=None)
    legacy = f"{deployment.app_id}-contacts-changelog"
    ensure_topics(settings, compacted=(legacy,))
    with EventSender(settings) as sender:
        sender.send(msgspec.msgpack.encode(record), key=orjson.dumps("contact\x1fc-upgrade"), topic=legacy)
        sender.send(orjson.dumps({"next_offset": 1}), key=orjson.dumps("\x00progress\x1f0"), topic=legacy)
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "-", input_bytes=answered + b"\n")
        assert produced.returncode == 0, produced.stderr.decode()
        labels = {"queue": "upgrade_q", "channel": "voice", "window": "today"}
        worker.wait_for(lambda s: counter(s, "ccpulse_answered", **labels) == 1, timeout=60)
        assert counter(worker.scrape(), "ccpulse_offered", **labels) == 1
        assert "upgrade from the Faust contacts stage: 1 contacts" in worker.log_path.read_text(errors="replace")
