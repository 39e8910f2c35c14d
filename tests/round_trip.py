"""A platform writer's output converted back, compared with the simulator's own contacts
(``ccpulse simulate --as FORMAT``, the tests of pipeline/sources/*_out.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

Event = dict[str, Any]


def contact_facts(stream: Iterable[Event], kept: set[str], contact_of: Callable[[Event], str],
                  work: Callable[[Event], object]) -> dict[str, dict[str, object]]:  # fmt: skip
    """Per contact in ``kept`` (by ``contact_of``): when each of its lifecycle events happened (to the
    millisecond), its queue, channel, customer, reason and case, its agent, its disposition, and
    ``work`` of its end when it was answered."""
    found: dict[str, dict[str, object]] = {}
    for event in stream:
        contact = contact_of(event)
        if contact not in kept or not str(event["type"]).startswith("contact."):
            continue
        if event["type"] == "contact.transferred":
            continue  # the platform writers do not write the simulator's transfers (adapters: test_source_*)
        facts = found.setdefault(contact, {})
        at = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
        facts[event["type"]] = round(at.timestamp(), 3)
        if event["type"] == "contact.offered":
            facts["who"] = tuple(event.get(name) for name in ("queue", "channel", "customer_id", "reason", "case_id"))
        if event["type"] == "contact.answered":
            facts["agent"] = event["agent_id"]
        if event["type"] == "contact.ended" and "contact.answered" in facts:
            facts["work"], facts["resolved"] = work(event), event["resolved"]
    return found


def finished_contacts(events: Iterable[Event], channels: set[str]) -> set[str]:
    """The simulator's contacts on ``channels`` that were offered and are over."""
    offered, over = set(), set()
    for event in events:
        if event["type"] == "contact.offered" and event["channel"] in channels:
            offered.add(event["contact_id"])
        elif event["type"] in ("contact.abandoned", "contact.ended"):
            over.add(event["contact_id"])
    return offered & over
