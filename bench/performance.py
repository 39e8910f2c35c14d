"""ccpulse side by side with its peers, in one run, on one broker and one simulator topic.

    .venv/bin/python -m bench.performance [--events 2000000] [--scale-events 400000]

1. The simulator fills a topic with --events events (fixed seeds, no faults), keyed by contact.
2. Throughput and peak memory (each in a process of its own, VmHWM), reading the whole topic:
   (a) the raw floor: aiokafka + orjson.loads, nothing else;
   (b) one ccpulse worker, all stages, the embedded ClickHouse sink on (event clock);
   (c) a Quix Streams application computing the queue metrics per queue, channel and minute
       (service level, ASA, abandonment, AHT, CSAT: their counts and sums) — bench/peers/quix_app.py;
   (d) the same in faust-streaming the obvious way, windowed tables updated per event —
       bench/peers/faust_app.py.
   The peers' minutes must equal ccpulse's ``metrics_minute`` (same counts and sums, every
   queue, channel and minute), or the run fails: a faster wrong answer means nothing.
3. Freshness under a steady load (--load events/s, wall clock): ccpulse from a probe contact's
   send to its gauge on /metrics (bench/throughput.py's probes); the peers from each source
   message's send to the update of its minute window, inside their own process (no exposition
   step: this favours them).
4. Scale: 1, 2 and 4 ccpulse workers on one topic of 8 partitions (--scale-events events), and
   beside them 1, 2 and 4 processes of the Quix Streams application in one consumer group
   (--scale-only runs this part alone).

Writes bench/results/performance.json and docs/images/performance.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.machine import cpu_seconds, describe, process_tree, status_kib, tree_cpu_seconds
from bench.peers.queue_minutes import FIELDS
from bench.throughput import STAGES, fill, filled_topic, freshness, seconds_to_process

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "raw floor (aiokafka + orjson)"
CCPULSE = "ccpulse (one worker, ClickHouse sink on)"
QUIX = "Quix Streams (tumbling windows)"
FAUST = "Faust windowed tables, per event"
PEERS = ((FLOOR, "floor"), (CCPULSE, "ccpulse"), (QUIX, "quix"), (FAUST, "faust"))
CCPULSE_MINUTES = (
    "SELECT queue, channel, toUnixTimestamp(minute) * 1000000 AS minute_us, offered, answered, answered_in_sl, "
    "abandoned, short_abandoned, toInt64(wait_seconds_sum * 1000000) AS wait_us, handled, "
    "toInt64(handle_seconds_sum * 1000000) AS handle_us, csat_responses, csat_positive "
    "FROM ccpulse.metrics_minute FINAL"
)


PER_PROCESS = ("cpu_us_per_event", "peak_mib_by_process")  # ccpulse's figures per process


class PeakMemory:
    """Samples the peak resident memory (VmHWM) of a process and of each of its descendants until
    it ends; the peak is their sum (ccpulse's worker has a ClickHouse writer process). A sum of
    high-water marks can only overstate what the processes held at once."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peaks_kib = pid, {}  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and Path(f"/proc/{self.pid}").exists():
            for pid in process_tree(self.pid):
                self.peaks_kib[pid] = max(self.peaks_kib.get(pid, 0), status_kib(pid, "VmHWM"))
            time.sleep(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(timeout=2)
        return sum(self.peaks_kib.values()) / 1024

    def by_process(self) -> dict[str, float]:
        """The peaks in MiB: the process itself, and the largest of its descendants (ccpulse: its
        ClickHouse writer process) apart from the rest (Python's small resource tracker)."""
        children = sorted((kib for pid, kib in self.peaks_kib.items() if pid != self.pid), reverse=True)
        return {"process": round(self.peaks_kib.get(self.pid, 0) / 1024), "largest child": round(children[0] / 1024)
                if children else 0, "other children": round(sum(children[1:]) / 1024)}  # fmt: skip


def run_peer(name: str, bootstrap: str, topic: str, events: int, partitions: int, root: Path,
             timeout: float = 3 * 3600) -> dict[str, Any]:  # fmt: skip
    work = root / f"{name}-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    out = work / "result.json"
    command = [sys.executable, "-m", f"bench.peers.{name}_app", "--bootstrap", bootstrap, "--topic", topic,
               "--events", str(events), "--group", f"peer-{work.name}", "--state-dir", str(work / "state"),
               "--out", str(out)]  # fmt: skip
    if name == "faust":
        command += ["--partitions", str(partitions)]
    with open(work / "log.txt", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        memory = PeakMemory(process.pid)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            log_tail = (work / "log.txt").read_text()[-1500:]
            raise RuntimeError(f"{name} peer did not finish reading {events:,} events in {timeout:.0f} s "
                               f"(stalled or too slow); its log ends: {log_tail}") from None  # fmt: skip
        finally:
            peak = memory.stop()
    if not out.exists():
        log_tail = (work / "log.txt").read_text()[-3000:]
        raise RuntimeError(f"{name} peer wrote no result (exit {process.returncode}): {log_tail}")
    result = json.loads(out.read_text())
    result["peak_mib"] = peak
    return result


def ccpulse_run(deployment: Any, events: int, broker_pid: int | None) -> dict[str, Any]:
    from tests.worker_process import query

    worker = deployment.worker("ccpulse").start()
    memory = PeakMemory(worker.process.pid)
    cpu = CpuPerEvent(worker.process.pid, broker_pid)
    try:
        seconds = seconds_to_process(worker, events, on_first=cpu.begin)
        cpu_us = cpu.end(events)
        print("ccpulse CPU per event on the backlog: "
              + ", ".join(f"{name} {value:.1f} µs" for name, value in cpu_us.items()), flush=True)  # fmt: skip
        while worker.scrape().get(("ccpulse_sink_backlog_rows", ()), 1):
            time.sleep(0.2)
        time.sleep(2)  # metrics_minute is refreshed after the contributions are in
        rows = query(worker, CCPULSE_MINUTES)
    finally:
        peak = memory.stop()
        worker.stop()
    split = memory.by_process()
    print(f"ccpulse peak memory: worker {split['process']} MiB, ClickHouse writer {split['largest child']} MiB, "
          f"other {split['other children']} MiB", flush=True)  # fmt: skip
    return {"read": events, "seconds": seconds, "minutes": rows, "peak_mib": peak, "cpu_us_per_event": cpu_us,
            "peak_mib_by_process": split}  # fmt: skip


class CpuPerEvent:
    """CPU microseconds per event of the worker, its ClickHouse writer process and the broker, from
    the worker's first counted event to its last (``/proc/<pid>/stat``; children by pid)."""

    def __init__(self, worker_pid: int, broker_pid: int | None) -> None:
        self.worker_pid, self.broker_pid = worker_pid, broker_pid
        self.started: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        found = tree_cpu_seconds(self.worker_pid)
        if self.broker_pid:
            found[self.broker_pid] = cpu_seconds(self.broker_pid)
        return found

    def begin(self) -> None:
        self.started = self._now()

    def end(self, events: int) -> dict[str, float]:
        used = {pid: seconds - self.started.get(pid, 0.0) for pid, seconds in self._now().items()}
        worker = used.pop(self.worker_pid, 0.0)
        broker = used.pop(self.broker_pid, 0.0) if self.broker_pid else None
        result = {"worker": worker, "clickhouse writer": sum(used.values())}  # its children: the writer
        if broker is not None:
            result["broker"] = broker
        return {name: round(seconds * 1e6 / events, 1) for name, seconds in result.items()}


def minutes_of(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], tuple[int, ...]]:
    table = {}
    for row in rows:
        values = tuple(int(row[name]) for name in FIELDS)
        if any(values):  # ccpulse also has minutes with only FCR/NPS/CES contributions
            table[(row["queue"], row["channel"], int(row["minute_us"]))] = values
    return table


def differences(ours: dict, theirs: dict) -> list[str]:  # type: ignore[type-arg]
    problems = [f"{key}: ccpulse {ours.get(key)} peer {theirs.get(key)}"
                for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]  # fmt: skip
    return problems


def peer_freshness(name: str, bootstrap: str, settings: Any, load: float, seconds: float, partitions: int,
                   root: Path) -> list[float]:  # fmt: skip
    """Latencies (ms) of a peer under a steady load of fresh events (wall-clock times)."""
    from pipeline.kafka_io import EventSender, ensure_topics
    from pipeline.simulation import Simulation
    from pipeline.timefmt import rfc3339

    ensure_topics(settings)
    total = int(load * seconds)
    holder: dict[str, Any] = {}

    def run() -> None:
        try:
            holder.update(run_peer(name, bootstrap, settings.topic, total, partitions, root))
        except Exception as problem:  # noqa: BLE001 - reported below, with the peer's log
            holder["error"] = problem

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(8)  # the peer joins its group and is assigned before the load starts
    with EventSender(settings) as sender:
        began = time.monotonic()
        events = Simulation(datetime.now(UTC), seed=97, scale=50).events(timedelta(days=1))
        contact_events = (e for e in events if e["type"] != "agent.state_changed")  # the peers' input
        for sent, event in enumerate(contact_events, start=1):
            sender.send(orjson.dumps({**event, "occurred_at": rfc3339(datetime.now(UTC))}))
            if sent >= total:
                break
            delay = sent / load - (time.monotonic() - began)
            if delay > 0:
                time.sleep(delay)
    thread.join(timeout=600)
    if "error" in holder:
        raise RuntimeError(f"{name} under load failed: {holder['error']}")
    return sorted(holder.get("latencies_ms", []))


def scale_run(bootstrap: str, root: Path, events: int, workers: int, topic: str) -> dict[str, float]:
    from tests.worker_process import Deployment

    deployment = Deployment(bootstrap, root / f"scale-{workers}", topic=topic, partitions=8,
                            extra_env={"CCPULSE_CLOCK": "event", "CCPULSE_LOG_LEVEL": "warning"})  # fmt: skip
    deployment.root.mkdir(parents=True, exist_ok=True)
    running = [deployment.worker(f"w{n}").start() for n in range(workers)]
    try:
        first = None
        while True:
            done, lags, stages, answered = 0.0, [], set(), 0
            for worker in running:
                try:
                    samples = worker.scrape()
                except OSError:
                    if worker.process is not None and worker.process.poll() is not None:
                        raise RuntimeError(f"worker {worker.name} exited: {worker.log_tail()}") from None
                    continue  # busy (a rebalance): ask again
                answered += 1
                done += sum(v for (name, _), v in samples.items() if name == "ccpulse_events_total")
                lags += [v for (name, _), v in samples.items() if name == "ccpulse_consumer_lag"]
                stages |= {dict(labels)["stage"] for (name, labels) in samples if name == "ccpulse_consumer_lag"}
            now = time.perf_counter()
            if done and first is None:
                first = now
            # every worker answered, every stage reported by some worker, and no lag anywhere
            if done >= events and answered == len(running) and stages >= set(STAGES) and not any(lags):
                seconds = now - first  # type: ignore[operator]
                return {"workers": workers, "seconds": seconds, "events_per_second": events / seconds}
            time.sleep(0.3)
    finally:
        for worker in running:
            worker.stop()


def peer_scale_run(bootstrap: str, root: Path, events: int, processes: int, topic: str) -> dict[str, Any]:
    """``processes`` Quix Streams processes in one consumer group on ``topic``, timed as the
    one-process run is: from the first source message any of them read to the last window update
    any of them made (the machine's monotonic clock). The end is seen when the group has committed
    every message of the source topic and of its repartition topic (Quix commits every 5 s, so the
    processes run up to ~5 s longer than timed, idle). Throughput only: the same application's
    numbers are checked in the one-process run."""
    from kafka import KafkaAdminClient, KafkaConsumer  # type: ignore[attr-defined]

    group = f"peer-scale-{processes}-{uuid.uuid4().hex[:6]}"
    work = root / group
    work.mkdir()
    running = []
    for n in range(processes):
        log = open(work / f"log-{n}.txt", "wb")  # noqa: SIM115 - closed with the process below
        command = [sys.executable, "-m", "bench.peers.quix_app", "--bootstrap", bootstrap, "--topic", topic,
                   "--events", "0", "--group", group, "--state-dir", str(work / f"state-{n}"),
                   "--out", str(work / f"result-{n}.json")]  # fmt: skip
        running.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + 3600
        while not _group_done(admin, consumer, group, topic, events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{processes} Quix Streams processes did not finish {events:,} events in an hour")
            for n, (process, _) in enumerate(running):
                if process.poll() is not None:
                    raise RuntimeError(f"a Quix Streams process exited ({process.returncode}): "
                                       f"{(work / f'log-{n}.txt').read_text()[-1500:]}")  # fmt: skip
            time.sleep(0.5)
    finally:
        admin.close()
        consumer.close()
        for process, _ in running:
            process.terminate()
        for process, log in running:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
    outs = [json.loads(path.read_text()) for path in sorted(work.glob("result-*.json"))]
    if len(outs) != processes:
        raise RuntimeError(f"{processes - len(outs)} of {processes} Quix Streams processes wrote no result on SIGTERM")
    first = min(out["first"] for out in outs if out["first"] is not None)
    last = max(out["last"] for out in outs if out["last"] is not None)
    return {"processes": processes, "seconds": last - first, "events_per_second": events / (last - first),
            "read": sum(out["read"] for out in outs)}  # fmt: skip


def _group_done(admin: Any, consumer: Any, group: str, topic: str, events: int) -> bool:
    """Every source message and every message of the group's repartition topic committed."""
    from kafka import TopicPartition  # type: ignore[attr-defined]

    committed = {tp: meta.offset for tp, meta in admin.list_group_offsets(group).get(group, {}).items()}
    if sum(offset for tp, offset in committed.items() if tp.topic == topic) < events:
        return False
    internal = [name for name in consumer.topics() if name.startswith(f"repartition__{group}--")]
    partitions = [TopicPartition(name, p) for name in internal for p in consumer.partitions_for_topic(name) or ()]
    return bool(partitions) and all(committed.get(tp, 0) >= end for tp, end in consumer.end_offsets(partitions).items())


def percentile(values: list[float], share: float) -> float | None:
    return values[min(len(values) - 1, int(share * len(values)))] if values else None


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [row for row in results["throughput"] if "events_per_second" in row]  # failed peers: no bar
    names = [row["name"] for row in rows]
    scale = [s for s in results["scale"] if "events_per_second" in s]
    if not rows:  # --scale-only
        figure, axis = plt.subplots(figsize=(7, 4.2))
        plot_scale(axis, results)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        return
    figure, axes = plt.subplots(1, 2 if scale else 1, figsize=(12 if scale else 7, 4.2), squeeze=False)
    left = axes[0][0]
    colours = ["#93a1b0", "#2fbf71", "#4c78a8", "#f2b134"]
    bars = left.barh(names, [row["events_per_second"] for row in rows], color=colours)
    left.bar_label(bars, labels=[f"{row['events_per_second']:,.0f}" for row in rows], padding=3)
    left.set_xscale("log")
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # 2x10^4, 3x10^4, ... overlapped
    left.set_xlim(right=max(row["events_per_second"] for row in rows) * 4)  # room for the largest bar's label
    left.set_xlabel("events per second, log scale (higher is better)")
    left.invert_yaxis()
    left.set_title(f"{results['events']:,} simulator events, one process each")
    if not scale:
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        return
    plot_scale(axes[0][1], results)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def plot_scale(axis: Any, results: dict[str, Any]) -> None:
    scale = [s for s in results["scale"] if "events_per_second" in s]
    quix = [s for s in results.get("scale_quix", []) if "events_per_second" in s]
    axis.plot([s["workers"] for s in scale], [s["events_per_second"] for s in scale], marker="o", color="#2fbf71",
              label="ccpulse workers")  # fmt: skip
    if quix:
        axis.plot([s["processes"] for s in quix], [s["events_per_second"] for s in quix], marker="s",
                  color="#4c78a8", label="Quix Streams processes")  # fmt: skip
        axis.legend(loc="lower right")
    axis.set_xticks(sorted({s["workers"] for s in scale} | {s["processes"] for s in quix}))
    cores = results.get("machine", describe())["cores"]
    axis.set_xlabel(f"processes in one group\n(8 partitions, {results['scale_events']:,} events, {cores} cores)")
    axis.set_ylabel("events per second")
    axis.set_ylim(bottom=0)
    axis.set_title("scaling out on one machine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--scale-events", type=int, default=400_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--load", type=float, default=1000.0, help="events/s during the freshness runs")
    parser.add_argument("--load-seconds", type=float, default=40.0)
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--bootstrap", default=os.environ.get("CCPULSE_KAFKA_BOOTSTRAP"))
    parser.add_argument("--output", type=Path, help="default bench/results/performance.json (scaling.json)")
    parser.add_argument("--plot", type=Path, help="default docs/images/performance.png (scaling.png)")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--scale-only", action="store_true", help="only the scale part (4): workers and processes")
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=3 * 3600,
        help="seconds a peer may take to read the topic; past it the run records it as failed",
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --output's results")
    args = parser.parse_args()
    name = "scaling" if args.scale_only else "performance"
    args.output = args.output or ROOT / "bench" / "results" / f"{name}.json"
    args.plot = args.plot or ROOT / "docs" / "images" / f"{name}.png"
    if args.plot_only:
        plot(json.loads(args.output.read_text()), args.plot)
        return

    from pipeline.local_broker import launcher
    from pipeline.settings import Settings
    from tests.worker_process import Deployment

    results: dict[str, Any] = {"machine": describe(), "events": None if args.scale_only else args.events,
                               "scale_events": args.scale_events,
                               "command": " ".join(["python -m bench.performance", *sys.argv[1:]])}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ccpulse-performance-") as folder:
        root = Path(folder)
        broker = None if args.bootstrap else launcher().start(root / "broker", port=0)
        bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
        try:
            runs: dict[str, dict[str, Any]] = {}
            failed: dict[str, str] = {}  # a peer that stalled or crashed: recorded, not hidden
            checks: dict[str, dict[str, Any]] = {}
            fresh: dict[str, list[float]] = {}
            produced = 0
            if not args.scale_only:
                batch, produced = filled_topic(bootstrap, root, args.partitions, args.events)
                print(f"topic {batch.topic}: {produced:,} events", flush=True)
            for name, peer in PEERS if not args.scale_only else ():
                if peer == "ccpulse":
                    runs[name] = ccpulse_run(batch, produced, broker.pid if broker else None)
                else:
                    try:
                        runs[name] = run_peer(peer, bootstrap, batch.topic, produced, args.partitions, root,
                                              args.peer_timeout)  # fmt: skip
                    except RuntimeError as problem:
                        failed[name] = str(problem)[:2000]
                        print(f"{name}: FAILED: {failed[name]}", flush=True)
                        continue
                print(f"{name}: {produced / runs[name]['seconds']:,.0f} events/s, "
                      f"peak {runs[name]['peak_mib']:.0f} MiB", flush=True)  # fmt: skip

            for name in (QUIX, FAUST) if not args.scale_only else ():
                if name in failed:
                    continue
                ours = minutes_of(runs[CCPULSE]["minutes"])
                problems = differences(ours, minutes_of(runs[name]["minutes"]))
                checks[name] = {"minutes_compared": len(ours), "differences": len(problems), "examples": problems[:10]}
                print(f"{name}: {len(ours):,} minutes compared with ccpulse, {len(problems)} differ", flush=True)

            if not args.scale_only:
                live = Deployment(bootstrap, root, partitions=args.partitions,
                                  extra_env={"CCPULSE_CLOCK": "wall", "CCPULSE_LOG_LEVEL": "warning"})  # fmt: skip
                settings = Settings.from_env(live.env(), env_file=None)
                fresh[CCPULSE] = sorted(1000 * s for s in freshness(live, settings, args.load, args.probes))
            for name, peer in ((QUIX, "quix"), (FAUST, "faust")) if not args.scale_only else ():
                loaded = Deployment(bootstrap, root, partitions=args.partitions)
                try:
                    fresh[name] = peer_freshness(peer, bootstrap, Settings.from_env(loaded.env(), env_file=None),
                                                 args.load, args.load_seconds, args.partitions, root)  # fmt: skip
                except RuntimeError as problem:
                    failed.setdefault(name, f"freshness run: {str(problem)[:2000]}")
                    print(f"{name} freshness: FAILED: {problem}", flush=True)
                    continue
                print(f"{name} freshness median {percentile(fresh[name], 0.5)} ms", flush=True)

            scale: list[dict[str, Any]] = []
            scale_quix: list[dict[str, Any]] = []
            if not args.skip_scale:
                scaled = Deployment(bootstrap, root, partitions=8)
                scale_settings = Settings.from_env(scaled.env(), env_file=None)
                fill(scale_settings, args.scale_events)
                for workers in (1, 2, 4):
                    try:
                        scale.append(scale_run(bootstrap, root, args.scale_events, workers, scaled.topic))
                    except RuntimeError as problem:  # recorded, not hidden: a worker exited (e.g. stalled)
                        scale.append({"workers": workers, "failed": str(problem)[:2000]})
                    print(f"scale: {scale[-1]}", flush=True)
                    try:
                        scale_quix.append(peer_scale_run(bootstrap, root, args.scale_events, workers, scaled.topic))
                    except RuntimeError as problem:
                        scale_quix.append({"processes": workers, "failed": str(problem)[:2000]})
                    print(f"scale, Quix Streams: {scale_quix[-1]}", flush=True)
        finally:
            if not args.bootstrap:
                launcher().stop(root / "broker")

    results["throughput"] = [
        {"name": name, "events_per_second": produced / run["seconds"], "seconds": run["seconds"],
         "peak_mib": run["peak_mib"], **{key: run[key] for key in PER_PROCESS if key in run},
         "freshness_median_ms": percentile(fresh.get(name, []), 0.5),
         "freshness_p99_ms": percentile(fresh.get(name, []), 0.99),
         "freshness_samples": len(fresh.get(name, [])), **({"failed": failed[name]} if name in failed else {})}
        for name, run in runs.items()
    ] + [{"name": name, "failed": reason} for name, reason in failed.items() if name not in runs]  # fmt: skip
    results["checks"] = checks
    results["scale"] = scale
    results["scale_quix"] = scale_quix
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    plot(results, args.plot)
    print(json.dumps({k: v for k, v in results.items() if k != "checks"}, indent=2))
    if any(check["differences"] for check in checks.values()):
        print("FAILED: a peer's numbers differ from ccpulse's (see checks in the result file)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
