"""What real producers do to a stream, injected on purpose and reproducibly (seeded).

- ``duplicates``: a share of events is sent again later: half as the very same message (a
  producer retry, same ``event_id``), half as a re-emission with a new ``event_id`` and an
  ``occurred_at`` moved by up to two seconds either way (the contract's (contact_id, type)
  duplicates: the earliest one counts, whichever arrives first).
- ``disorder``: a share of events is held back and delivered up to ``disorder_window`` seconds
  of simulated time later, so arrival order is not event-time order.
- ``invalid_rate``: hostile messages mixed in (not JSON, not UTF-8, NaN, deeply nested, over
  64 KiB, unknown type, missing or out-of-range fields); each is invalid under the contract.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count

import orjson

from pipeline.core.json_bytes import json_bytes
from pipeline.timefmt import rfc3339


@dataclass(frozen=True)
class Faults:
    duplicates: float = 0.0
    disorder: float = 0.0
    disorder_window: float = 600.0
    invalid_rate: float = 0.0

    @property
    def any(self) -> bool:
        return bool(self.duplicates or self.disorder or self.invalid_rate)


def hostile_messages(rng: random.Random, template: dict[str, object]) -> bytes:
    """One message that the contract rejects, of a randomly chosen kind."""
    kind = rng.randrange(10)
    if kind == 0:
        return b'{"event_id": "broken", "type": "contact.offered", '  # truncated JSON
    if kind == 1:
        return orjson.dumps(template)[:-1] + b', "note": "\xff\xfe not UTF-8"}'
    if kind == 2:
        return orjson.dumps(template)[:-1] + b', "score": NaN}'
    if kind == 3:
        return b'{"deep": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    if kind == 4:
        return orjson.dumps({**template, "padding": "x" * (70 * 1024)})
    if kind == 5:
        return orjson.dumps({**template, "type": "contact.teleported"})
    if kind == 6:
        return orjson.dumps({key: value for key, value in template.items() if key != "event_id"})
    if kind == 7:
        return orjson.dumps({**template, "occurred_at": "yesterday at noon"})
    if kind == 8:
        return orjson.dumps({**template, "schema_version": 99})
    return orjson.dumps([template])


def _shifted(event: dict[str, object], rng: random.Random, serial: int) -> dict[str, object]:
    moment = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
    moved = moment + timedelta(seconds=rng.uniform(-2, 2))
    return {**event, "event_id": f"{event['event_id']}-retry{serial}", "occurred_at": rfc3339(moved)}


def inject(
    events: Iterable[dict[str, object]], faults: Faults, seed: int
) -> Iterator[tuple[dict[str, object] | None, bytes]]:
    """The message stream: (event or None for a hostile one, the bytes to send), in delivery order.

    Delivery order follows simulated time; a held-back event is delivered once the stream has
    moved past its delivery time.
    """
    rng = random.Random(seed * 7919 + 1)
    held: list[tuple[float, int, dict[str, object] | None, bytes]] = []
    serial = count()

    def hold(deliver_at: float, event: dict[str, object] | None, raw: bytes) -> None:
        heapq.heappush(held, (deliver_at, next(serial), event, raw))

    for event in events:
        moment = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00")).timestamp()
        while held and held[0][0] <= moment:
            _, _, late_event, raw = heapq.heappop(held)
            yield late_event, raw
        raw = orjson.dumps(event)
        if faults.disorder and rng.random() < faults.disorder:
            hold(moment + rng.uniform(1, faults.disorder_window), event, raw)
        else:
            yield event, raw
        if faults.duplicates and rng.random() < faults.duplicates:
            again = event if rng.random() < 0.5 else _shifted(event, rng, next(serial))
            hold(moment + rng.uniform(0.5, 120), again, json_bytes(again))
        if faults.invalid_rate and rng.random() < faults.invalid_rate:
            yield None, hostile_messages(rng, event)
    while held:
        _, _, late_event, raw = heapq.heappop(held)
        yield late_event, raw
