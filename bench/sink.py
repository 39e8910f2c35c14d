"""ClickHouse sink throughput into the embedded engine, beside a plain clickhouse-connect bulk insert
of the same rows, in one run (one process, one engine, two databases).

    .venv/bin/python -m bench.sink --events 200000

(a) ccpulse's sink: rows handed over in stage-sized batches (2,000 events), written by its thread
    in flushes of CCPULSE_SINK_FLUSH_ROWS, every table a ReplacingMergeTree;
(b) the peer: ``client.insert`` of the same rows into the same tables, in chunks of the same size.
Rows: the ``events`` and ``contacts`` rows of simulated traffic (what the ingest and contacts
stages write). Reported: rows/s for each and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from bench.validation import messages
from pipeline.core.contract import check
from pipeline.core.engine import Engine
from pipeline.core.facts import CONTACT_COLUMNS, EVENT_COLUMNS, contact_row, event_row
from pipeline.sink import Sink, SinkBatch
from pipeline.warehouse import Warehouse, connect, load_migrations, migrations_dir

STAGE_BATCH = 2000


def rows_of(count: int) -> tuple[list[tuple], list[tuple]]:  # type: ignore[type-arg]
    engine = Engine()
    events = []
    for number, raw in enumerate(messages(count)):
        event = check(raw).event
        if event is not None:
            engine.process(event, f"0:{number}")
            events.append(event_row(event, raw))
    contacts = [contact_row(cid, record, engine.targets) for cid, record in engine.contacts.items()]
    return events, contacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--flush-rows", type=int, default=20_000)
    parser.add_argument("--output", type=Path, default=Path("bench/results/sink.json"))
    args = parser.parse_args()
    events, contacts = rows_of(args.events)
    total = len(events) + len(contacts)
    migrations = load_migrations(migrations_dir())
    with tempfile.TemporaryDirectory() as directory:
        client = connect(f"chdb://{directory}/clickhouse")
        sink_side = Warehouse(connect(f"chdb://{directory}/clickhouse"), "bench_sink")  # closed by the sink
        plain_side = Warehouse(client, "bench_plain")
        sink_side.migrate(migrations)
        plain_side.migrate(migrations)

        # (b) plain clickhouse-connect bulk inserts, same chunk size as the sink's flushes
        started = time.perf_counter()
        for table, rows, columns in (("events", events, EVENT_COLUMNS), ("contact_facts", contacts, CONTACT_COLUMNS)):
            for start in range(0, len(rows), args.flush_rows):
                client.insert(f"bench_plain.{table}", rows[start : start + args.flush_rows], column_names=list(columns))
        plain_seconds = time.perf_counter() - started

        # (a) the sink, fed stage-sized batches as the agents feed it
        async def through_sink() -> float:
            sink = Sink(lambda: sink_side, flush_rows=args.flush_rows, flush_seconds=0.5)
            sink.start(asyncio.get_running_loop())
            done = asyncio.Event()
            remaining = [0]
            begun = time.perf_counter()
            for table, rows in (("events", events), ("contact_facts", contacts)):
                for start in range(0, len(rows), STAGE_BATCH):
                    batch = SinkBatch()
                    batch.rows[table] = rows[start : start + STAGE_BATCH]
                    remaining[0] += 1

                    def durable() -> None:
                        remaining[0] -= 1
                        if not remaining[0]:
                            done.set()

                    batch.on_durable = durable
                    await sink.write(batch)
            await done.wait()
            elapsed = time.perf_counter() - begun
            sink.stop()
            return elapsed

        sink_seconds = asyncio.run(through_sink())
        counts = {db: client.query(f"SELECT (SELECT count() FROM {db}.events FINAL) + "
                                   f"(SELECT count() FROM {db}.contacts FINAL)").result_rows[0][0]
                  for db in ("bench_sink", "bench_plain")}  # fmt: skip
        assert counts["bench_sink"] == counts["bench_plain"] == total, counts
    result = {
        "command": f"python -m bench.sink --events {args.events}",
        "machine": describe(),
        "rows": total,
        "sink_rows_per_second": round(total / sink_seconds),
        "plain_insert_rows_per_second": round(total / plain_seconds),
        "ratio": round(plain_seconds / sink_seconds, 3),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"rows: {total:,} ({len(events):,} events, {len(contacts):,} contacts)")
    print(f"ccpulse sink:               {result['sink_rows_per_second']:>10,} rows/s")
    print(f"clickhouse-connect insert:  {result['plain_insert_rows_per_second']:>10,} rows/s")
    print(f"sink / plain: {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
