"""How soon a processed event is visible in ClickHouse, at default sink settings.

    .venv/bin/python -m bench.sink_freshness --url http://127.0.0.1:6066 --bootstrap 127.0.0.1:9092

Against a running worker (``ccpulse up`` or ``ccpulse worker``): sends one valid event at a time
to the input topic and polls the worker's read-only /query endpoint until its row is in
``ccpulse.events`` (and its contact in ``ccpulse.contacts``). The time is from the send, so it
includes Kafka and the pipeline, not only the sink. Prints the median and the worst of N probes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime

from kafka import KafkaProducer


def visible(url: str, sql: str) -> bool:
    with urllib.request.urlopen(f"{url}/query?sql={urllib.parse.quote(sql)}", timeout=10) as response:
        return bool(response.read().strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:6066")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="cc.events")
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=0)
    delays = []
    for _ in range(args.probes):
        contact = f"fresh-{uuid.uuid4().hex[:12]}"
        event = {"event_id": contact, "type": "contact.offered", "schema_version": 1,
                 "occurred_at": datetime.now(UTC).isoformat(), "contact_id": contact, "channel": "voice",
                 "queue": "freshness_probe", "customer_id": "probe"}  # fmt: skip
        sent = time.perf_counter()
        producer.send(args.topic, json.dumps(event).encode(), key=contact.encode()).get(10)
        sql = f"SELECT 1 FROM ccpulse.contacts WHERE contact_id = '{contact}'"
        while not visible(args.url, sql):
            time.sleep(0.02)
        delays.append(time.perf_counter() - sent)
        time.sleep(0.5)
    print(
        f"visible in ClickHouse after: median {statistics.median(delays):.3f} s, "
        f"worst {max(delays):.3f} s ({args.probes} probes, from the send)"
    )


if __name__ == "__main__":
    main()
