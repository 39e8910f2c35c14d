"""Resident memory of one worker over simulated days at a steady rate (event clock).

    .venv/bin/python -m bench.memory [--days 3] [--scale 1] [--pace 1000] [--bootstrap HOST:PORT]

Starts one worker with CCPULSE_CLOCK=event on a fresh topic, produces --days of simulated
traffic to it at a steady --pace (events per second of real time), and samples the worker's
RSS against the simulated time it has reached, until it has read everything. Without
--bootstrap (or CCPULSE_KAFKA_BOOTSTRAP) it starts the local broker.

State expires by event time: contacts after CCPULSE_CONTACT_RETENTION_HOURS (26 h), board
reports after 27 h, agents offline for 26 h, issue keys after the FCR window + 26 h. With the
default FCR window (7 days) issue state grows for 8 days, then stays flat; --targets with a
shorter fcr_window_days shows the flat curve sooner.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.machine import describe, rss_mib


def run(days: float, scale: float, bootstrap: str | None, root: Path, pace: float = 1000,
        env: dict[str, str] | None = None) -> dict[str, object]:  # fmt: skip
    from pipeline.core.json_bytes import json_bytes
    from pipeline.kafka_io import EventSender, ensure_topics
    from pipeline.settings import Settings
    from pipeline.simulation import Simulation
    from tests.worker_process import Deployment

    launcher_dir = None
    if not bootstrap:
        from pipeline.local_broker import launcher

        launcher_dir = root / "broker"
        bootstrap = launcher().start(launcher_dir, port=0).bootstrap
    try:
        deployment = Deployment(bootstrap, root, extra_env={"CCPULSE_CLOCK": "event", **(env or {})})
        settings = Settings.from_env(deployment.env(), env_file=None)
        ensure_topics(settings)
        start = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
        events = list(Simulation(start, seed=7, scale=scale).events(timedelta(days=days)))
        lines = [json_bytes(event) for event in events]
        produced = len(lines)
        # the worker is done when it has read every event *and* its clock (the board's, fed by the
        # ingest stage's ticks a moment later) has reached the last one
        last_at = max(datetime.fromisoformat(str(event["occurred_at"])) for event in events).timestamp()
        del events
        stop = threading.Event()

        def produce() -> None:  # a steady pace, as a live center sends them
            with EventSender(settings) as sender:
                began = time.monotonic()
                for sent, line in enumerate(lines, start=1):
                    if stop.is_set():
                        return
                    sender.send(line)
                    ahead = sent / pace - (time.monotonic() - began)
                    if ahead > 0.05:
                        time.sleep(ahead)

        samples: list[tuple[float, float, float]] = []  # (simulated hours, events read, RSS MiB)
        tables: list[dict[str, float]] = []  # keys per state table, at each sample
        worker = deployment.worker().start()
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        began = time.monotonic()
        try:
            assert worker.process is not None
            while True:
                scrape = worker.scrape()
                done = sum(v for (name, _), v in scrape.items() if name == "ccpulse_events_total")
                clock = scrape.get(("ccpulse_clock_seconds", ()), 0.0)
                hours = (clock - start.timestamp()) / 3600 if clock else 0.0
                samples.append((round(hours, 2), done, round(rss_mib(worker.process.pid), 1)))
                tables.append({labels[0][1]: v for (name, labels), v in scrape.items() if name == "ccpulse_state_keys"})
                if done >= produced and clock >= last_at - 0.001:
                    break
                if not producer.is_alive() and time.monotonic() - began > produced / pace + 600:
                    raise RuntimeError(f"the worker read {done} of {produced} events, its clock at hour {hours:.2f}")
                time.sleep(1)
        finally:
            stop.set()
            worker.stop()
        seconds = time.monotonic() - began
    finally:
        if launcher_dir is not None:
            from pipeline.local_broker import launcher

            launcher().stop(launcher_dir)
    return {"days": days, "scale": scale, "pace": pace, "events": produced, "seconds": seconds, "samples": samples,
            "state_keys": tables}  # fmt: skip


def summary(result: dict[str, object]) -> dict[str, float]:
    samples = result["samples"]
    assert isinstance(samples, list)

    def at(hours: float) -> float:
        return next((rss for h, _, rss in samples if h >= hours), samples[-1][2])

    return {"rss_at_6h": at(6), "rss_at_24h": at(24), "rss_at_end": samples[-1][2],
            "peak": max(rss for _, _, rss in samples)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=3)
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--pace", type=float, default=1000, help="events per second of real time")
    parser.add_argument("--targets", type=Path, help="a targets file (CCPULSE_TARGETS), e.g. a shorter fcr_window_days")
    parser.add_argument("--bootstrap", default=os.environ.get("CCPULSE_KAFKA_BOOTSTRAP"))
    parser.add_argument("--output", type=Path, default=Path("bench/results/memory.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccpulse-memory-") as folder:
        env = {"CCPULSE_TARGETS": str(args.targets.resolve())} if args.targets else None
        result = run(args.days, args.scale, args.bootstrap, Path(folder), args.pace, env)
    result["machine"] = describe()
    result["summary"] = summary(result)
    print(f"{result['events']} events over {args.days} simulated days read in {result['seconds']:.0f}s")
    print(f"{'simulated hour':>15} {'events read':>12} {'RSS MiB':>9}")
    last_hour = -99.0
    for (hours, done, rss), keys in zip(result["samples"], result["state_keys"], strict=True):  # type: ignore[call-overload]
        if hours - last_hour >= 6:
            print(f"{hours:15.1f} {done:12.0f} {rss:9.1f}   state keys {keys}")
            last_hour = hours
    print("summary:", result["summary"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
