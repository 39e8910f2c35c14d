"""End-to-end throughput of one worker beside the raw consume floor, and gauge freshness.

    .venv/bin/python -m bench.throughput [--events 200000] [--partitions 4] [--probes 40]

One run, one broker (the local launcher unless --bootstrap or CCPULSE_KAFKA_BOOTSTRAP):
1. the simulator fills a fresh topic with --events events (fixed seed);
2. floor: an aiokafka consumer in this Python process reads the whole topic and parses every
   message with orjson: the least any Python consumer of this topic can cost;
3. Faust floor: a Faust agent (its own process) that only takes batches and parses: the least
   any pipeline built on Faust agents pays per message;
4. ccpulse: one worker (event clock) reads the same topic through all four stages; timed from
   its first processed event to every stage's lag being 0 (ccpulse_consumer_lag);
5. freshness: a second worker (wall clock) under a steady background load (--load events/s);
   probe contacts are produced one by one and the time until each shows on /metrics
   (ccpulse_offered of its own queue) is recorded: median and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.machine import describe
from tests.worker_process import STAGES  # one list of the stages, shared with the tests


def fill(settings, events: int) -> int:  # type: ignore[no-untyped-def]
    from pipeline.kafka_io import EventSender, ensure_topics
    from pipeline.simulation import Simulation

    ensure_topics(settings)
    keep_forever(settings.kafka_bootstrap, settings.topic)
    start, sent, day = datetime(2026, 11, 23, tzinfo=UTC), 0, 0
    with EventSender(settings) as sender:
        while sent < events:
            for event in Simulation(start + timedelta(days=day), seed=11 + day, scale=4).events(timedelta(days=1)):
                sender.send(orjson.dumps(event))
                sent += 1
                if sent >= events:
                    break
            day += 1
    return sent


def keep_forever(bootstrap: str, topic: str) -> None:
    """No time retention on the bench's topic. The simulator's days begin 2026-11-23, and a peer
    that stamps its own topics with event time (Quix Streams' ``set_timestamp`` before
    ``group_by``: its repartition topic takes the source topic's retention) would have them
    deleted by the broker's 7-day retention while it reads them ("offset out of range", seen on
    2026-12-05), and read them again from the start."""
    from kafka import KafkaAdminClient  # type: ignore[attr-defined]
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ccpulse-bench")
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "-1"})])
    finally:
        admin.close()


def filled_topic(bootstrap: str, root: Path, partitions: int, events: int):  # type: ignore[no-untyped-def]
    """A deployment (event clock) on a fresh topic filled with ``events`` simulator events."""
    from pipeline.settings import Settings
    from tests.worker_process import Deployment

    deployment = Deployment(bootstrap, root, partitions=partitions,
                            extra_env={"CCPULSE_CLOCK": "event", "CCPULSE_LOG_LEVEL": "warning"})  # fmt: skip
    return deployment, fill(Settings.from_env(deployment.env(), env_file=None), events)


def floor_rate(bootstrap: str, topic: str, events: int) -> float:
    from aiokafka import AIOKafkaConsumer

    async def consume() -> float:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"floor-{time.time_ns()}",
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    max_partition_fetch_bytes=4 * 1024 * 1024)  # fmt: skip
        await consumer.start()
        seen, began = 0, 0.0
        try:
            while seen < events:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batches.values():
                    if not began:
                        began = time.perf_counter()
                    for record in records:
                        orjson.loads(record.value)
                    seen += len(records)
        finally:
            await consumer.stop()
        return seen / (time.perf_counter() - began)

    return asyncio.run(consume())


def faust_floor_rate(bootstrap: str, topic: str, events: int, partitions: int) -> float:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bench.faust_floor", bootstrap, topic, str(events), str(partitions)],
                          capture_output=True, text=True, timeout=1800, check=True)  # fmt: skip
    # Faust sends what the agent prints to its log (stderr); the result is the line with the JSON
    line = next(line for line in (done.stdout + done.stderr).splitlines() if '{"events"' in line)
    result = json.loads(line[line.index("{") :])
    return float(result["events"] / result["seconds"])


# What the progress poll reads: asking /metrics for these alone spares the worker the formatting of
# every other sample, and this process the parsing of them, five times a second
PROGRESS_SAMPLES = ("ccpulse_events_total", "ccpulse_consumer_lag")


def seconds_to_process(worker, events: int, on_first=None) -> float:  # type: ignore[no-untyped-def]
    """Seconds from the worker's first counted event until it has counted ``events`` and every
    stage's lag is 0 (scraped every 0.2 s). All four stages must report a lag: a stage without
    its partitions yet has none, and must not pass for one that is done."""
    first = None
    while True:
        samples = worker.scrape(*PROGRESS_SAMPLES)
        done = sum(v for (name, _), v in samples.items() if name == "ccpulse_events_total")
        lags = {dict(labels)["stage"]: v for (name, labels), v in samples.items() if name == "ccpulse_consumer_lag"}
        now = time.perf_counter()
        if done and first is None:
            first = now
            if on_first is not None:
                on_first()
        if done >= events and set(lags) >= set(STAGES) and not any(lags.values()):
            assert first is not None
            return now - first
        time.sleep(0.2)


def worker_rate(deployment, events: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    worker = deployment.worker("throughput").start()
    try:
        seconds = seconds_to_process(worker, events)
        return {"seconds": seconds, "events_per_second": events / seconds}
    finally:
        worker.stop()


PROBE_POLL_SECONDS = 0.05  # each scrape of /metrics costs the worker's event loop a few ms
# The probe asks /metrics for its gauge alone (``name[]``): the whole page (2,000 samples at scale 50
# after a minute) cost the worker ~20-30 ms to render per poll, ~30% of its core at this poll rate,
# and this process 60-90 ms to parse beside the thread producing the load; both counted in the latency.
PROBE_GAUGE = "ccpulse_offered"


def freshness(deployment, settings, load: float, probes: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds from producing a probe contact to seeing it on /metrics, under a steady load
    (polled every PROBE_POLL_SECONDS: a finer poll slowed the worker it measured)."""
    from pipeline.kafka_io import EventSender
    from pipeline.simulation import Simulation

    stop = threading.Event()

    def background() -> None:
        with EventSender(settings) as sender:
            began = time.monotonic()
            for sent, event in enumerate(
                Simulation(datetime.now(UTC), seed=99, scale=50).events(timedelta(days=1)), start=1
            ):
                if stop.is_set():
                    return
                sender.send(orjson.dumps({**event, "occurred_at": _now()}))
                delay = sent / load - (time.monotonic() - began)
                if delay > 0:
                    time.sleep(delay)

    worker = deployment.worker("freshness").start()
    loader = threading.Thread(target=background, daemon=True)
    loader.start()
    latencies: list[float] = []
    try:
        time.sleep(5)  # let the load settle
        with EventSender(settings) as sender:
            for number in range(probes):
                queue = f"probe{number}"
                probe = {"event_id": f"probe-{number}", "type": "contact.offered", "schema_version": 1,
                         "occurred_at": _now(), "contact_id": f"probe-{number}", "channel": "voice",
                         "queue": queue, "customer_id": "probe"}  # fmt: skip
                sender.send(orjson.dumps(probe))
                sender.settle()  # sent and acknowledged: the probe is on the broker
                sent_at = time.perf_counter()
                key = (PROBE_GAUGE, (("channel", "voice"), ("queue", queue), ("window", "15m")))
                while time.perf_counter() - sent_at < 30:
                    if worker.scrape(PROBE_GAUGE).get(key, 0) >= 1:
                        latencies.append(time.perf_counter() - sent_at)
                        break
                    time.sleep(PROBE_POLL_SECONDS)
                time.sleep(0.2)
    finally:
        stop.set()
        worker.stop()
    return latencies


def _now() -> str:
    from pipeline.timefmt import rfc3339

    return rfc3339(datetime.now(UTC))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--load", type=float, default=1000.0, help="background events/s during the freshness probes")
    parser.add_argument("--bootstrap", default=os.environ.get("CCPULSE_KAFKA_BOOTSTRAP"))
    parser.add_argument("--output", type=Path, default=Path("bench/results/throughput.json"))
    args = parser.parse_args()

    from pipeline.local_broker import launcher
    from pipeline.settings import Settings
    from tests.worker_process import Deployment

    with tempfile.TemporaryDirectory(prefix="ccpulse-throughput-") as folder:
        root = Path(folder)
        bootstrap = args.bootstrap or launcher().start(root / "broker", port=0).bootstrap
        try:
            batch, produced = filled_topic(bootstrap, root, args.partitions, args.events)
            print(f"topic filled with {produced} events")
            floor = floor_rate(bootstrap, batch.topic, produced)
            print(f"floor (aiokafka + orjson.loads): {floor:,.0f} events/s")
            faust_floor = faust_floor_rate(bootstrap, batch.topic, produced, args.partitions)
            print(f"Faust floor (one agent, take_events + orjson.loads): {faust_floor:,.0f} events/s")
            ours = worker_rate(batch, produced)
            print(f"ccpulse worker, all four stages: {ours['events_per_second']:,.0f} events/s "
                  f"({ours['seconds']:.1f}s) = {ours['events_per_second'] / floor:.3f} of the floor, "
                  f"{ours['events_per_second'] / faust_floor:.2f} of the Faust floor")  # fmt: skip
            live = Deployment(bootstrap, root, partitions=args.partitions,
                              extra_env={"CCPULSE_CLOCK": "wall", "CCPULSE_LOG_LEVEL": "warning"})  # fmt: skip
            latencies = freshness(live, Settings.from_env(live.env(), env_file=None), args.load, args.probes)
        finally:
            if not args.bootstrap:
                launcher().stop(root / "broker")
    latencies.sort()
    median = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(f"freshness under {args.load:.0f} events/s: {len(latencies)}/{args.probes} probes seen, "
          f"median {median:.3f}s, p99 {p99:.3f}s")  # fmt: skip
    result = {
        "machine": describe(), "events": produced, "partitions": args.partitions,
        "floor_events_per_second": floor, "faust_floor_events_per_second": faust_floor,
        "ccpulse": ours, "ratio_to_floor": ours["events_per_second"] / floor,
        "freshness_seconds": {"load": args.load, "probes": args.probes, "seen": len(latencies),
                              "median": median, "p99": p99},
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
