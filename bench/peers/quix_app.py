"""Peer (c): a Quix Streams application computing the queue metrics per minute.

    python -m bench.peers.quix_app --bootstrap HOST:PORT --topic T --events N --out result.json

With ``--events 0`` it runs until it is stopped (SIGTERM): one of several processes sharing the
consumer group; the caller sees the end in the group's committed offsets and times the run from
the processes' first read to their last window update (``bench/performance.py``'s
``peer_scale_run``).

Contact state in Quix's state store (keyed by the message key, the contact id), contributions
re-keyed by queue and channel (``group_by``: a repartition topic), summed in event-time tumbling
windows of one minute (``tumbling_window(...).reduce(...).current()``). It stops once it has read
``--events`` source messages and applied every contribution, and writes its windows, its timing
and the latency of each contribution (from the source message's send time to its window update).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application

from bench.peers.queue_minutes import FIELDS, add, contributions, minute_of

DAY_MS = 86_400_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument(
        "--events", type=int, required=True, help="stop after this many source messages (0: run until stopped)"
    )
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    app = Application(
        broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
        state_dir=args.state_dir, loglevel="WARNING", use_changelog_topics=True,
    )  # fmt: skip
    source = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
    progress = {"read": 0, "sent": 0, "applied": 0, "first": None, "last": None}
    windows: dict[tuple[str, int], list[int]] = {}
    latencies_ms: list[float] = []

    def maybe_done() -> None:
        if args.events and progress["read"] >= args.events and progress["applied"] >= progress["sent"]:
            app.stop()

    def contact_step(value: bytes, key: Any, timestamp: int, headers: Any, state: Any) -> list[dict[str, Any]]:
        progress["read"] += 1
        if progress["first"] is None:
            progress["first"] = time.monotonic()
        event = orjson.loads(value)
        contact = state.get("contact")
        contact, out = contributions(contact, event)
        if contact is not None:
            state.set("contact", contact)
        progress["sent"] += len(out)
        if not out:
            maybe_done()
        # sent_ms: when the source message was produced (its Kafka timestamp), for freshness
        return [{"qc": f"{q}\x1f{c}", "at_ms": at // 1000, "sent_ms": timestamp, "amounts": a} for q, c, at, a in out]

    def window_applied(result: dict[str, Any], key: Any, timestamp: int, headers: Any) -> None:
        windows[(key.decode() if isinstance(key, bytes) else key, result["start"])] = result["value"][0]
        latencies_ms.append(time.time() * 1000 - result["value"][1])
        progress["applied"] += 1
        progress["last"] = time.monotonic()
        maybe_done()

    sdf = app.dataframe(source)
    sdf = sdf.apply(contact_step, stateful=True, expand=True, metadata=True)
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: value["at_ms"])
    sdf = sdf.group_by(lambda value: value["qc"], name="queue_channel")
    sdf = sdf.tumbling_window(duration_ms=60_000, grace_ms=30 * DAY_MS).reduce(
        reducer=lambda total, value: [add(total[0], value["amounts"]), value["sent_ms"]],
        initializer=lambda value: [add([0] * len(FIELDS), value["amounts"]), value["sent_ms"]],
    ).current()  # fmt: skip
    sdf = sdf.update(window_applied, metadata=True)
    app.run()

    seconds = (progress["last"] or 0) - (progress["first"] or 0)
    minutes = [
        {"queue": qc.split("\x1f")[0], "channel": qc.split("\x1f")[1], "minute_us": start * 1000,
         **dict(zip(FIELDS, totals, strict=True))}
        for (qc, start), totals in windows.items()
    ]  # fmt: skip
    assert all(minute_of(m["minute_us"]) == m["minute_us"] for m in minutes)
    # first and last: this machine's monotonic clock, for a run of several processes (``--events 0``)
    args.out.write_text(json.dumps({"read": progress["read"], "seconds": seconds, "minutes": minutes,
                                    "latencies_ms": latencies_ms, "first": progress["first"],
                                    "last": progress["last"]}))  # fmt: skip


if __name__ == "__main__":
    main()
