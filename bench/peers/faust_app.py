"""Peer (d): faust-streaming written the obvious way, with Faust's windowed tables per event.

    python -m bench.peers.faust_app --bootstrap HOST:PORT --topic T --events N --out result.json

Agent ``contacts`` reads the source (keyed by contact id) and keeps each contact in a table;
each contribution goes to an internal topic keyed by queue and channel, with the attribution
time as the message timestamp. Agent ``minutes`` adds every contribution to a windowed table
(``.tumbling(60)`` relative to the message's timestamp): one read-modify-write per contribution,
as Faust's documentation shows windowed tables. It stops once it has read ``--events`` source
messages and applied every contribution, and writes its windows and timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import faust
import orjson

from bench.peers.queue_minutes import FIELDS, add, contributions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    app = faust.App(
        args.group, broker=f"kafka://{args.bootstrap}", store="memory://", datadir=args.state_dir, web_enabled=False,
        topic_partitions=args.partitions, consumer_auto_offset_reset="earliest",
    )  # fmt: skip
    source = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    contributed = app.topic(f"{args.group}-contributions", key_type=str, value_type=bytes,
                            key_serializer="raw", value_serializer="raw", internal=True)  # fmt: skip
    contacts = app.Table("contacts", default=None, partitions=args.partitions)
    minute_table = app.Table("minutes", default=list, partitions=args.partitions)
    minutes = minute_table.tumbling(
        timedelta(minutes=1), expires=timedelta(days=30)
    ).relative_to_stream()  # fmt: skip
    progress = {"read": 0, "sent": 0, "applied": 0, "first": 0.0, "last": 0.0}
    latencies_ms: list[float] = []
    done = asyncio.Event()

    def maybe_done() -> None:
        if progress["read"] >= args.events and progress["applied"] >= progress["sent"]:
            done.set()

    @app.agent(source)
    async def contact_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            progress["read"] += 1
            progress["first"] = progress["first"] or time.monotonic()
            key = event.key.decode() if event.key else ""
            state, out = contributions(contacts.get(key), orjson.loads(event.value))
            if state is not None:
                contacts[key] = state
            sent_ms = event.message.timestamp * 1000  # the source message's produce time
            for queue, channel, at, amounts in out:
                progress["sent"] += 1
                await contributed.send(key=f"{queue}\x1f{channel}", value=orjson.dumps([amounts, sent_ms]),
                                       timestamp=at / 1_000_000)  # fmt: skip
            maybe_done()

    @app.agent(contributed)
    async def minute_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            amounts, sent_ms = orjson.loads(event.value)
            current = minutes[event.key].current() or [0] * len(FIELDS)
            minutes[event.key] = add(current, amounts)
            latencies_ms.append(time.time() * 1000 - sent_ms)
            progress["applied"] += 1
            progress["last"] = time.monotonic()
            maybe_done()

    @app.task
    async def finish() -> None:
        await done.wait()
        rows = []
        for (key, (start, _end)), totals in minute_table.data.items():
            queue, channel = key.split("\x1f")
            rows.append({"queue": queue, "channel": channel, "minute_us": round(start * 1_000_000),
                         **dict(zip(FIELDS, totals, strict=True))})  # fmt: skip
        args.out.write_text(json.dumps({"read": progress["read"], "seconds": progress["last"] - progress["first"],
                                        "minutes": rows, "latencies_ms": latencies_ms}))  # fmt: skip
        os._exit(0)  # a clean Faust shutdown takes seconds and is not what is measured

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
