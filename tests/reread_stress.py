"""A Faust app with the worker's consumer class, reading one topic while a task asks, every
millisecond, for each of its partitions to be read again from the start — what the commit gate
asks for on a hole in delivery, as often as it can. Prints ``survived ...`` and exits 0 when the
consumer lived through it; a crash of Faust's fetcher stops the app with a traceback instead.

Usage: python -m tests.reread_stress BOOTSTRAP TOPIC SECONDS
(run by tests/integration/test_kafka_clients.py)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import faust

from pipeline.consumer import gated
from pipeline.core.commits import CommitGate


def main(bootstrap: str, topic_name: str, seconds: float) -> None:
    app = faust.App(f"reread-{os.getpid()}", broker=f"kafka://{bootstrap}", web_enabled=False,
                    store="memory://", consumer_auto_offset_reset="earliest")  # fmt: skip
    app.transport.Consumer = gated(CommitGate())  # type: ignore[misc]
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    received = [0]

    @app.agent(topic)
    async def count(stream):  # type: ignore[no-untyped-def]
        async for _ in stream:
            received[0] += 1

    @app.task
    async def read_again_and_again() -> None:
        while not any(tp.topic == topic_name for tp in app.consumer.assignment()) or not received[0]:
            await asyncio.sleep(0.05)
        logging.getLogger("ccpulse.commits").setLevel(logging.ERROR)  # one warning per seek otherwise
        seeks, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            for tp in app.consumer.assignment():
                if tp.topic == topic_name:
                    await app.consumer.read_again(tp, 0, "a stress test")  # type: ignore[attr-defined]
                    seeks += 1
            await asyncio.sleep(0.001)
        print(f"survived {seeks} seeks, {received[0]} messages received", flush=True)
        os._exit(0)  # the verdict is printed; a clean Faust shutdown would only add time

    faust.Worker(app, loglevel="warning").execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
