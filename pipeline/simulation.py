"""Simulated contact-center traffic: a deterministic generator of contract-valid events.

Pure: the start time and the seed are parameters, nothing reads a clock or does I/O, so the
same arguments always give the same events (tests and benchmarks depend on it).

This first version models each queue as Poisson arrivals with exponential waits, customer
patience and abandonment, handle times and surveys; agents and staffing come later.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.timefmt import rfc3339


@dataclass(frozen=True)
class QueueProfile:
    queue: str
    channel: str
    contacts_per_hour: float
    mean_wait_seconds: float
    mean_patience_seconds: float
    mean_handle_seconds: float


DEFAULT_QUEUES = (
    QueueProfile("billing", "voice", 240, 25, 90, 300),
    QueueProfile("support", "voice", 300, 35, 120, 420),
    QueueProfile("sales", "chat", 120, 20, 180, 600),
    QueueProfile("claims", "email", 40, 4 * 3600, 10**9, 480),
)


def contact_events(
    start: datetime, duration: timedelta, seed: int = 1, queues: tuple[QueueProfile, ...] = DEFAULT_QUEUES
) -> Iterator[dict[str, object]]:
    """Events of contacts offered in ``[start, start + duration)``, sorted by ``occurred_at``."""
    rng = random.Random(seed)
    events: list[tuple[datetime, int, dict[str, object]]] = []
    serial = 0

    def emit(at: datetime, event: dict[str, object]) -> None:
        nonlocal serial
        serial += 1
        event = {"event_id": f"sim-{seed}-{serial}", "occurred_at": rfc3339(at), "schema_version": 1, **event}
        events.append((at, serial, event))

    end = start + duration
    for profile in queues:
        at = start
        while True:
            at += timedelta(seconds=rng.expovariate(profile.contacts_per_hour / 3600))
            if at >= end:
                break
            contact = f"{profile.queue}-{seed}-{serial}"
            customer = f"cust-{rng.randrange(5000)}"
            emit(
                at,
                {
                    "type": "contact.offered",
                    "contact_id": contact,
                    "channel": profile.channel,
                    "queue": profile.queue,
                    "customer_id": customer,
                    "reason": rng.choice(["invoice", "outage", "upgrade", "refund"]),
                },
            )
            wait = rng.expovariate(1 / profile.mean_wait_seconds)
            patience = rng.expovariate(1 / profile.mean_patience_seconds)
            if patience < wait:
                emit(at + timedelta(seconds=patience), {"type": "contact.abandoned", "contact_id": contact})
                continue
            answered = at + timedelta(seconds=wait)
            emit(
                answered,
                {"type": "contact.answered", "contact_id": contact, "agent_id": f"agent-{rng.randrange(40)}"},
            )
            talk = rng.expovariate(1 / profile.mean_handle_seconds)
            hold = rng.choice([0, 0, 0, rng.uniform(5, 90)])
            acw = rng.uniform(5, 60)
            ended = answered + timedelta(seconds=talk + hold + acw)
            resolved = rng.random() < 0.75
            emit(
                ended,
                {
                    "type": "contact.ended",
                    "contact_id": contact,
                    "talk_seconds": round(talk, 1),
                    "hold_seconds": round(hold, 1),
                    "acw_seconds": round(acw, 1),
                    "resolved": resolved,
                },
            )
            if rng.random() < 0.3:
                emit(
                    ended + timedelta(seconds=rng.uniform(30, 600)),
                    {
                        "type": "survey.responded",
                        "contact_id": contact,
                        "csat": rng.choice([5, 5, 4, 4, 3, 2, 1] if resolved else [4, 3, 2, 1, 1]),
                        "nps": rng.randrange(11),
                        "ces": rng.randint(1, 7),
                    },
                )
    events.sort(key=lambda item: (item[0], item[1]))
    for _, _, event in events:
        yield event
