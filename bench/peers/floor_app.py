"""Peer (a): the raw floor — a Python consumer (aiokafka) that only reads and parses.

python -m bench.peers.floor_app --bootstrap HOST:PORT --topic T --events N --out result.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.throughput import floor_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args, _ = parser.parse_known_args()
    rate = floor_rate(args.bootstrap, args.topic, args.events)
    args.out.write_text(json.dumps({"read": args.events, "seconds": args.events / rate, "minutes": None}))


if __name__ == "__main__":
    main()
