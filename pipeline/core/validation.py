"""Deciding whether a message is a valid event (the contract in EVENTS.md).

``verdict(raw)`` never raises: every input, however hostile, gets either an event type or a
stable reason code. This first cut checks the envelope's outer shape only; the full contract
(every field of every type, timestamps normalised to UTC) replaces it behind the same API.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

MAX_MESSAGE_BYTES = 64 * 1024
EVENT_TYPES = frozenset(
    {
        "contact.offered",
        "contact.answered",
        "contact.abandoned",
        "contact.ended",
        "survey.responded",
        "agent.state_changed",
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    event_type: str | None  # set when valid
    reason: str | None = None  # a stable code when invalid: invalid_json, schema, too_large
    detail: str = ""

    @property
    def valid(self) -> bool:
        return self.reason is None


def verdict(raw: bytes) -> Verdict:
    if len(raw) > MAX_MESSAGE_BYTES:
        return Verdict(None, "too_large", f"{len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as problem:
        return Verdict(None, "invalid_json", str(problem)[:200])
    if not isinstance(event, dict):
        return Verdict(None, "schema", "an event is a JSON object")
    event_type = event.get("type")
    if event_type not in EVENT_TYPES:
        return Verdict(None, "schema", f"type: {str(event_type)[:80]!r} is not an event type")
    return Verdict(event_type)
