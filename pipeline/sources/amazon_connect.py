"""Amazon Connect contact records as contract events (``ccpulse convert --from amazon-connect``).

Pure: lines in, events (dicts in the contract's JSON form) out; no clock, no I/O. One JSON
document per line. This version reads **contact records** (Connect's "contact trace records",
the data model of the Connect administrator guide: ``ContactId``, ``InitiationMethod``,
``Channel``, ``Queue{Name, EnqueueTimestamp, DequeueTimestamp}``, ``Agent{Username,
ConnectedToAgentTimestamp, AgentInteractionDuration, CustomerHoldDuration,
AfterContactWorkDuration, AfterContactWorkEndTimestamp}``, ``CustomerEndpoint{Address}``,
``DisconnectTimestamp``, ``DisconnectReason``, ``Attributes``). Contact events (EventBridge:
``detail.eventType``) and agent events (Kinesis: ``AgentARN`` and ``EventType``) are told apart by
their fields and read by ``pipeline.sources.amazon_connect_events``.

A contact record is the whole contact, so it needs no state: every event comes from the record
alone, its id from the contact id and the event type, so a record delivered again (Connect
delivers them at least once, and again when attributes change) gives the same events and the
pipeline counts them once. What each field becomes, and why: docs/sources.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.sources.amazon_connect_events import agent_event, contact_event
from pipeline.sources.asterisk import Outcome, queue_name
from pipeline.timefmt import rfc3339

CHANNELS = {"VOICE": "voice", "CHAT": "chat", "EMAIL": "email"}
# a customer waiting in a queue for an agent (docs/sources.md); a transfer's leg into another queue
# is a contact of that queue (issue 22, as Connect's "contacts queued" and Genesys count it)
COUNTED_METHODS = {"INBOUND", "API", "TRANSFER", "QUEUE_TRANSFER"}
AGENT_EVENT_FIELDS = {"AgentARN", "EventType"}  # Kinesis agent event stream


class ContactRecords:
    """A stream of contact records, line by line (any order: each record stands alone)."""

    def snapshot(self) -> dict[str, Any]:
        return {}  # no state: every record stands alone

    def restore(self, saved: dict[str, Any]) -> None:
        pass

    def line(self, raw: bytes | str) -> Outcome:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            return Outcome(skipped="blank")
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as problem:
            return Outcome(rejected="unreadable", detail=f"not JSON: {problem}")
        if not isinstance(record, dict):
            return Outcome(rejected="unreadable", detail="not a JSON object")
        try:
            if "ContactId" in record:
                return _events(record)
            if isinstance(record.get("detail"), dict) and "eventType" in record["detail"]:
                return contact_event(record["detail"], parse_time)  # EventBridge
            if AGENT_EVENT_FIELDS <= record.keys():
                return agent_event(record, parse_time)  # the Kinesis agent event stream
        except (AttributeError, KeyError, TypeError, ValueError) as problem:  # a field of the wrong shape
            name = record.get("ContactId") or (record.get("detail") or {}).get("contactId") or record.get("AgentARN")
            return Outcome(rejected="bad_record", detail=f"{name!r}: {problem}")
        return Outcome(skipped="not_a_connect_record")


def _events(record: dict[str, Any]) -> Outcome:
    contact = str(record["ContactId"])
    method = str(record.get("InitiationMethod") or "")
    if method not in COUNTED_METHODS:
        return Outcome(skipped=f"initiation_{method.lower() or 'unknown'}")
    channel = CHANNELS.get(str(record.get("Channel") or "").upper())
    if channel is None:
        return Outcome(skipped=f"channel_{str(record.get('Channel') or 'unknown').lower()}")
    queue_info = record.get("Queue") or {}
    if _time(queue_info.get("EnqueueTimestamp")) is None or not queue_info.get("Name"):
        return Outcome(skipped="not_queued")  # ended in the flow (IVR, self-service): never offered
    base = {"schema_version": 1, "contact_id": f"connect:{contact}"[:128]}
    agent = record.get("Agent") or {}
    offered = _offered(record, base, channel)
    connected = _time(agent.get("ConnectedToAgentTimestamp"))
    if connected is None:
        return Outcome(events=(offered, *_unanswered(record, base)))
    answered = {**base, "event_id": f"connect-{contact}-answered", "type": "contact.answered",
                "occurred_at": rfc3339(connected), "agent_id": _agent_id(agent)}  # fmt: skip
    return Outcome(events=(offered, answered, *_handled(record, base, agent), *_transferred(record, base)))


def _transferred(record: dict[str, Any], base: dict[str, object]) -> list[dict[str, object]]:
    """An answered contact the agent transferred: to a queue or agent (Connect makes the next leg a
    new contact, ``NextContactId``, counted in its own queue) or to an outside number
    (``TransferCompletedTimestamp``); at that time, else when the agent's leg ended."""
    at = _time(record.get("TransferCompletedTimestamp")) or _time(record.get("DisconnectTimestamp"))
    if not (record.get("NextContactId") or record.get("TransferCompletedTimestamp")) or at is None:
        return []
    extra = {"connect_next_contact": str(record["NextContactId"])} if record.get("NextContactId") else {}
    return [{**base, "event_id": f"connect-{record['ContactId']}-transferred", "type": "contact.transferred",
             "occurred_at": rfc3339(at), **extra}]  # fmt: skip


def _offered(record: dict[str, Any], base: dict[str, object], channel: str) -> dict[str, object]:
    contact, queue_info = str(record["ContactId"]), record["Queue"]
    queue = queue_name(str(queue_info["Name"]))
    extra: dict[str, object] = {"connect_queue": queue_info["Name"]} if queue != queue_info["Name"] else {}
    attributes = record.get("Attributes") or {}
    for name, longest in (("reason", 64), ("case_id", 128)):  # contact attributes the flow may set
        if attributes.get(name):
            extra[name] = str(attributes[name])[:longest]
    customer = (record.get("CustomerEndpoint") or {}).get("Address")
    return {
        **base, "event_id": f"connect-{contact}-offered", "type": "contact.offered",
        "occurred_at": rfc3339(parse_time(str(queue_info["EnqueueTimestamp"]))), "queue": queue, "channel": channel,
        "customer_id": str(customer)[:128] if customer else f"anonymous:{contact}"[:128], **extra,
    }  # fmt: skip


def _unanswered(record: dict[str, Any], base: dict[str, object]) -> list[dict[str, object]]:
    """Queued, never connected: abandoned when the customer left ("disconnected by the customer
    while in queue", Connect's definition), else ended unanswered (the flow's queue timeout)."""
    contact = str(record["ContactId"])
    left = _time(record["Queue"].get("DequeueTimestamp")) or _time(record.get("DisconnectTimestamp"))
    if left is None:
        return []
    if record.get("DisconnectReason") in (None, "", "CUSTOMER_DISCONNECT"):
        return [{**base, "event_id": f"connect-{contact}-abandoned", "type": "contact.abandoned",
                 "occurred_at": rfc3339(left)}]  # fmt: skip
    return [{**base, "event_id": f"connect-{contact}-ended", "type": "contact.ended", "occurred_at": rfc3339(left),
             "resolved": False}]  # fmt: skip


def _handled(record: dict[str, Any], base: dict[str, object], agent: dict[str, Any]) -> list[dict[str, object]]:
    """The end of an answered contact: after its after-contact work, with Connect's durations."""
    ended = _time(agent.get("AfterContactWorkEndTimestamp")) or _time(record.get("DisconnectTimestamp"))
    if ended is None:
        return []
    return [{
        **base, "event_id": f"connect-{record['ContactId']}-ended", "type": "contact.ended",
        "occurred_at": rfc3339(ended), "talk_seconds": _seconds(agent, "AgentInteractionDuration"),
        "hold_seconds": _seconds(agent, "CustomerHoldDuration"),
        "acw_seconds": _seconds(agent, "AfterContactWorkDuration"), "resolved": _resolved(record),
    }]  # fmt: skip


def _time(value: object) -> datetime | None:
    """Connect's UTC timestamps (``2019-08-09T18:42:46Z``, with or without milliseconds)."""
    return parse_time(str(value)) if value else None


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _seconds(agent: dict[str, Any], name: str) -> float:
    value = agent.get(name) or 0
    if not isinstance(value, int | float) or value < 0:
        raise ValueError(f"Agent.{name} is {value!r}: whole seconds ≥ 0 expected")
    return float(value)


def _agent_id(agent: dict[str, Any]) -> str:
    """The agent's user name; else the agent id at the end of its ARN."""
    name = agent.get("Username") or str(agent.get("ARN") or "").rsplit("/", 1)[-1]
    if not name:
        raise ValueError("the contact was connected to an agent but the record names none")
    return str(name)[:128]


def _resolved(record: dict[str, Any]) -> bool:
    """A contact attribute ``resolved`` ("true"/"false") when the flow or the agent sets one;
    else resolved unless the contact was transferred on (a next contact, or a transfer out)."""
    given = str((record.get("Attributes") or {}).get("resolved", "")).strip().lower()
    if given in ("true", "false"):
        return given == "true"
    return not (record.get("NextContactId") or record.get("TransferCompletedTimestamp"))
