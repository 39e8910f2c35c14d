"""Validation and normalisation throughput, side by side in one run.

    .venv/bin/python -m bench.validation [--messages 200000] [--reference-messages 20000]

On the same simulator output (a working day, 1% hostile messages):
- orjson.loads: parsing alone, the floor of any validation;
- ccpulse: pipeline.core.contract.check, validation and normalisation (UTC microseconds,
  defaults), what the worker runs per message;
- jsonschema: the reference validator with the schemas in schemas/v1 (after orjson.loads),
  on a subset (it is slow); its verdicts must equal ccpulse's on every message of the subset.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.machine import describe
from pipeline.core.contract import check
from pipeline.simulation import Faults, Simulation, inject


def messages(count: int, seed: int = 1) -> list[bytes]:
    start = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    out: list[bytes] = []
    while len(out) < count:
        events = Simulation(start, seed=seed, scale=2).events(timedelta(days=1))
        out += [raw for _, raw in inject(events, Faults(invalid_rate=0.01), seed)]
        seed += 1
        start += timedelta(days=1)
    return out[:count]


def best_seconds(work: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--reference-messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("bench/results/validation.json"))
    args = parser.parse_args()

    from tests.schema_reference import validator

    corpus = messages(args.messages)
    subset = corpus[: args.reference_messages]
    reference = validator()

    def ccpulse_all() -> None:
        for raw in corpus:
            check(raw)

    def orjson_all() -> None:
        for raw in corpus:
            try:
                orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass

    def jsonschema_subset() -> None:
        for raw in subset:
            try:
                reference.is_valid(orjson.loads(raw))
            except orjson.JSONDecodeError:
                pass

    # Same verdicts on the subset (the reference reads JSON by the contract's rules).
    from tests.schema_reference import reference_valid

    disagreements = sum(check(raw).valid != reference_valid(raw) for raw in subset)
    invalid = sum(not check(raw).valid for raw in corpus)

    per_message = {
        "orjson.loads (floor)": best_seconds(orjson_all, args.repeats) / len(corpus),
        "ccpulse check (validate + normalise)": best_seconds(ccpulse_all, args.repeats) / len(corpus),
        "jsonschema (reference)": best_seconds(jsonschema_subset, max(1, args.repeats // 2)) / len(subset),
    }
    floor = per_message["orjson.loads (floor)"]
    ours = per_message["ccpulse check (validate + normalise)"]
    slowest = per_message["jsonschema (reference)"]
    size = sum(map(len, corpus)) / len(corpus)
    print(f"machine: {describe()}")
    print(f"{len(corpus)} messages (mean {size:.0f} bytes, {invalid} invalid); reference subset {len(subset)}, "
          f"verdict disagreements: {disagreements}")  # fmt: skip
    print(f"{'method':40} {'messages/s':>12} {'us/message':>11} {'x orjson cost':>14} {'x faster than jsonschema':>25}")
    for name, seconds in per_message.items():
        print(f"{name:40} {1 / seconds:12,.0f} {seconds * 1e6:11.2f} {seconds / floor:14.2f} {slowest / seconds:25.1f}")
    result = {
        "machine": describe(),
        "messages": len(corpus),
        "mean_bytes": size,
        "invalid": invalid,
        "reference_subset": len(subset),
        "disagreements": disagreements,
        "microseconds_per_message": {k: v * 1e6 for k, v in per_message.items()},
        "ccpulse_vs_orjson_cost": ours / floor,
        "ccpulse_speedup_vs_jsonschema": slowest / ours,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    if disagreements:
        raise SystemExit("verdicts differ from the reference: the comparison means nothing")


if __name__ == "__main__":
    main()
