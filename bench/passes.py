"""The worker's pure steps on a backlog, in one process, without Kafka or ClickHouse: where the
worker's CPU per event goes, step by step.

    python -m bench.passes --events 200000 [--batch-size 8000] [--profile out.html] [--gc worker|default|off]

On a shared machine two runs of one build can differ by a third, CPU time too. To compare two
builds, count instructions instead: the same events give the same count to a few hundred
instructions in 12 billion, when the collector is off and expiry goes by event time alone
(``--gc off``, which does both)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python -m bench.passes --events 20000 --gc off    # "Collected: N" = instructions

Simulator events (as ``bench/throughput.py`` fills the topic, keyed by ``ccpulse produce``'s rule)
are cut into fetches as the ingest stage's ``getmany`` gives them (``CCPULSE_BATCH_SIZE`` records,
spread over the partitions), and run through what each stage runs per batch: ``intake.take``, the
contacts pass, the issue blocks, the issues pass, the board's decode and apply, the board's
``metrics_minute`` sums, and the rows' encoding for the writer process. Prints µs per input event per
step (the process's CPU time: a shared machine's steal does not count); with ``--profile``, a
pyinstrument profile of the whole run. The garbage collector is tuned as
the worker tunes it (``--gc default``: Python's defaults, to see what that costs). It measures the Python only: the
Kafka clients, the event loop and the writer process come on top (``make bench`` measures those).
Compare runs of the same length only: the cost per event rises until the retention's state has
filled (~26 hours of events; 34.7 µs on 200,000 events, 45.7 on 1,000,000, docs/performance.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from kafka.partitioner.default import murmur2

from pipeline.collector import tune_garbage_collection
from pipeline.core.board import Board, MinutePartial
from pipeline.core.contact_pass import ContactPass
from pipeline.core.facts import board_minutes
from pipeline.core.intake import Intake, take
from pipeline.core.issue_pass import IssuePass
from pipeline.core.privacy import Pseudonyms
from pipeline.core.progress import PartitionProgress
from pipeline.core.targets import Targets
from pipeline.core.wire import board_decoder, issue_messages, partial_messages
from pipeline.kafka_io import message_key
from pipeline.settings import Settings
from pipeline.simulation import Simulation
from pipeline.warehouse_process import pack_write


@dataclass
class Record:
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, step: str, began: float) -> float:
        now = time.process_time()
        self.seconds[step] += now - began
        return now


def events(count: int) -> list[bytes]:
    found: list[bytes] = []
    start, day = datetime(2026, 11, 23, tzinfo=UTC), 0
    while len(found) < count:
        for event in Simulation(start + timedelta(days=day), seed=11 + day, scale=4).events(timedelta(days=1)):
            found.append(orjson.dumps(event))
            if len(found) >= count:
                break
        day += 1
    return found


def partitioned(lines: list[bytes], partitions: int) -> dict[int, list[Record]]:
    logs: dict[int, list[Record]] = defaultdict(list)
    for line in lines:
        key = message_key(line)
        partition = (murmur2(key) & 0x7FFFFFFF) % partitions if key else 0
        logs[partition].append(Record(len(logs[partition]), key, line))
    return logs


def fetches(logs: dict[int, list[Record]], batch_size: int) -> list[dict[int, list[Record]]]:
    """Fetches as ``getmany(max_records=batch_size)`` gives them on a backlog: a share per partition."""
    share = max(1, batch_size // len(logs))
    cursor = dict.fromkeys(logs, 0)
    found = []
    while any(cursor[p] < len(logs[p]) for p in logs):
        fetch = {p: logs[p][cursor[p] : cursor[p] + share] for p in logs if cursor[p] < len(logs[p])}
        for p, records in fetch.items():
            cursor[p] += len(records)
        found.append(fetch)
    return found


def run(count: int, settings: Settings, gc_mode: str = "worker") -> Timings:
    """The steps over ``count`` events; ``gc_mode``: the worker's collector, Python's default, or
    ``off`` (no collector, and expiry by event time only: the same work on every run)."""
    timings = Timings()
    key = settings.customer_key.reveal() if settings.customer_key else None
    targets, pseudonyms, partitions = Targets(), Pseudonyms(key), settings.partitions
    retention_us = int(settings.contact_retention_hours * 3600 * 1_000_000)
    logs = partitioned(events(count), partitions)
    if gc_mode == "worker":
        tune_garbage_collection()  # as the worker does (pipeline/collector.py): the input is frozen with it
    elif gc_mode == "off":
        gc.disable()
    wall = (lambda: 0.0) if gc_mode == "off" else time.monotonic  # 0: expiry by event time only
    progress = {p: PartitionProgress() for p in range(partitions)}
    passes = {p: ContactPass(targets, retention_us, source=p) for p in range(partitions)}
    issue_passes = {p: IssuePass(targets, retention_us, partition=p) for p in range(partitions)}
    issue_offsets, board = dict.fromkeys(range(partitions), 0), Board()
    for fetch in fetches(logs, settings.batch_size):
        began = time.process_time()
        intake = Intake()
        for p, records in fetch.items():
            take(progress[p], settings.topic, p, records, pseudonyms, partitions, intake)
        began = timings.add("intake.take (decode, validate, events rows)", began)
        outputs = [passes[p].on_batch(found, wall()) for p, found in intake.local.items()]
        began = timings.add("contacts pass", began)
        blocks = list(issue_messages([u for out in outputs for u in out.issue_updates], partitions))
        board_bytes = list(partial_messages([m for out in outputs for m in out.minutes],
                                            [m for out in outputs for m in out.live], partitions,
                                            [a for out in outputs for a in out.agents]))  # fmt: skip
        began = timings.add("encode issue blocks and partials", began)
        rows: dict[str, list[Any]] = {"events": intake.rows}
        rows["contact_facts"] = [r for out in outputs for r in out.contact_rows]
        rows["contributions"] = [r for out in outputs for r in out.contribution_rows]
        rows["agent_states"] = [r for out in outputs for r in out.agent_rows]
        for p, value in blocks:
            out = issue_passes[p].on_batch([(issue_offsets[p], value)], wall())
            issue_offsets[p] += 1
            for table, found in out.rows.items():
                rows.setdefault(table, []).extend(found)
            board_bytes += partial_messages(out.minutes, [], partitions)
        began = timings.add("issues pass (and its partials encoded)", began)
        touched = set()
        for _, value in board_bytes:
            message = board_decoder.decode(value)
            for partial in message.partials():
                if board.apply_partial(partial) and isinstance(partial, MinutePartial):
                    touched.add((partial.queue, partial.channel, partial.minute))
        began = timings.add("board: decode and apply", began)
        now_us = max(p.latest_at for p in passes.values())
        minutes, _ = board_minutes(board, touched, now_us, lambda queue: True)
        began = timings.add("board: metrics_minute sums", began)
        pack_write(rows, minutes, set(), 0)
        timings.add("rows encoded for the writer", began)
        for table, found in rows.items():
            timings.counts[table] += len(found)
        timings.counts["metrics_minute"] += len(minutes)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--profile", help="write a pyinstrument HTML profile here")
    parser.add_argument("--gc", choices=("worker", "default", "off"), default="worker",
                        help="the collector as the worker tunes it, Python's defaults, or off (with expiry by "
                             "event time only: the same instructions on every run, for callgrind)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size,
                        help="input events per fetch, as CCPULSE_BATCH_SIZE sets it in the worker (default: the "
                             "worker's default; the environment is not read here)")  # fmt: skip
    args = parser.parse_args()
    settings = dataclasses.replace(Settings.from_env({}, env_file=None), batch_size=args.batch_size)
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    began = time.process_time()
    timings = run(args.events, settings, args.gc)
    total = time.process_time() - began
    if profiler is not None:
        profiler.stop()
        with open(args.profile, "w") as out:
            out.write(profiler.output_html())
    print(f"{args.events:,} events, {settings.partitions} partitions, batch {settings.batch_size}, "
          f"garbage collection: {args.gc}")
    for step, seconds in timings.seconds.items():
        print(f"  {seconds / args.events * 1e6:7.2f} µs/event  {step}")
    print(f"  {sum(timings.seconds.values()) / args.events * 1e6:7.2f} µs/event  all steps "
          f"({total / args.events * 1e6:.2f} with the simulator's events)")  # fmt: skip
    print("rows per event: " + ", ".join(f"{t} {n / args.events:.2f}" for t, n in timings.counts.items()))


if __name__ == "__main__":
    main()
