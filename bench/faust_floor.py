"""The least a Faust agent can cost per event: read the topic with ``take_events`` and parse.

    .venv/bin/python -m bench.faust_floor BOOTSTRAP TOPIC EVENTS [PARTITIONS]

Run by ``bench/throughput.py`` in a process of its own (Faust owns its event loop): one agent
on the topic, batches of 1,000 as the ccpulse worker takes them, ``orjson.loads`` per event and
nothing else. Prints one JSON line (events, seconds from the first event to the last) and exits.
Every ccpulse stage pays at least this per message it reads; it is the ceiling for any
pipeline built on Faust agents on this machine.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid


def main() -> None:
    bootstrap, topic, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
    partitions = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    import faust
    import orjson

    app = faust.App(f"faust-floor-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", store="memory://",
                    web_enabled=False, topic_partitions=partitions, consumer_auto_offset_reset="earliest",
                    datadir=tempfile.mkdtemp(prefix="faust-floor-"))  # fmt: skip
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = {"events": 0, "began": 0.0}

    @app.agent(source)
    async def parse(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(1000, within=0.05):  # type: ignore[attr-defined]
            if not seen["began"]:
                seen["began"] = time.perf_counter()
            for event in batch:
                orjson.loads(event.message.value)
            seen["events"] += len(batch)
            if seen["events"] >= events:
                print(json.dumps({"events": seen["events"], "seconds": time.perf_counter() - seen["began"]}),
                      flush=True)  # fmt: skip
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
