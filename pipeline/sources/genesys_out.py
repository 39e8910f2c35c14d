"""Contract events as Genesys Cloud would have published them (``ccpulse simulate --as genesys-cloud``).

Pure. Writes the conversation detail events (EventBridge deliveries, one JSON per line, with the
fields ``pipeline.sources.genesys`` reads) of the contacts in a stream of contract events (the
simulator's): ``attributes`` (the flow's reason and case), ``acd.start`` when offered, ``acd.end``
(``ANSWERED``, ``ABANDON``, or ``FLOW_OUT`` for a contact that ended unanswered), the agent's
``user.end`` when the after-contact work begins (interacting = talk + hold, held = hold) and ``acw``
at its end. Times are milliseconds. Surveys and agent states are not written; the queue's name
stands for its id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from pipeline.sources.asterisk_out import number

MEDIA = {"voice": ("VOICE", None), "chat": ("CHAT", None), "email": ("EMAIL", None), "sms": ("MESSAGE", "SMS"),
         "social": ("MESSAGE", "WHATSAPP")}  # fmt: skip


@dataclass
class Open:
    queue: str
    body: dict[str, Any]
    agent: str | None = None
    answered_ms: int = 0


def milliseconds(occurred_at: object) -> int:
    return round(datetime.fromisoformat(str(occurred_at).replace("Z", "+00:00")).timestamp() * 1000)


def detail_events(events: Iterable[dict[str, object]]) -> Iterator[str]:
    """The detail events, one EventBridge delivery per line, in the events' (time) order."""
    open_contacts: dict[str, Open] = {}
    for event in events:
        kind, contact = event.get("type"), str(event.get("contact_id", ""))
        if kind == "contact.offered":
            if event.get("channel") in MEDIA and contact not in open_contacts:
                opened = open_contacts[contact] = _open(event)
                at = milliseconds(event["occurred_at"])
                attributes = {name: str(event[name]) for name in ("reason", "case_id") if event.get(name)}
                if attributes:
                    yield _delivery(contact, "attributes", {**opened.body, "eventTime": at, "attributes": attributes})
                yield _delivery(contact, "acd.start", {**opened.body, "eventTime": at})
            continue
        found = open_contacts.get(contact)
        if found is None:
            continue
        yield from _went_on(found, contact, event)
        if kind in ("contact.abandoned", "contact.ended"):
            del open_contacts[contact]


def _went_on(found: Open, contact: str, event: dict[str, object]) -> Iterator[str]:
    kind, at = event.get("type"), milliseconds(event["occurred_at"])
    if kind == "contact.answered" and found.agent is None:
        found.agent, found.answered_ms = str(event["agent_id"]), at
        yield _delivery(contact, "acd.end", {**found.body, "eventTime": at, "acdOutcome": "ANSWERED",
                                             "answeredUserId": found.agent})  # fmt: skip
    elif kind == "contact.abandoned" and found.agent is None:
        yield _delivery(contact, "acd.end", {**found.body, "eventTime": at, "acdOutcome": "ABANDON",
                                             "disconnectType": "PEER"})  # fmt: skip
    elif kind == "contact.ended" and found.agent is None:
        yield _delivery(contact, "acd.end", {**found.body, "eventTime": at, "acdOutcome": "FLOW_OUT"})
    elif kind == "contact.ended":
        if event.get("resolved") is False:
            yield _delivery(contact, "attributes", {**found.body, "eventTime": found.answered_ms,
                                                    "attributes": {"resolved": "false"}})  # fmt: skip
        talk, hold, acw = (round(number(event.get(name)) * 1000) for name in ("talk_seconds", "hold_seconds",
                                                                              "acw_seconds"))  # fmt: skip
        agent = {**found.body, "userId": found.agent}
        yield _delivery(contact, "user.end", {**agent, "eventTime": at - acw, "interactingDurationMs": talk + hold,
                                              "heldDurationMs": hold, "disconnectType": "PEER"})  # fmt: skip
        yield _delivery(contact, "acw", {**agent, "eventTime": at, "wrapupDurationMs": acw,
                                         "wrapupCode": "00000000-0000-4000-8000-000000000001"})  # fmt: skip


def _open(offered: dict[str, object]) -> Open:
    media, message = MEDIA[str(offered["channel"])]
    body: dict[str, Any] = {"conversationId": str(offered["contact_id"]), "participantId": "p-customer",
                            "sessionId": "s-1", "mediaType": media, "direction": "INBOUND",
                            "queueId": str(offered["queue"]), "divisionId": "d-home"}  # fmt: skip
    if message:
        body["messageType"] = message
    body["ani" if media == "VOICE" else "addressFrom"] = str(offered["customer_id"])
    return Open(str(offered["queue"]), body)


def _delivery(contact: str, kind: str, body: dict[str, Any]) -> str:
    topic = f"v2.detail.events.conversation.{contact}.{kind}"
    return orjson.dumps({
        "version": "0", "id": f"{contact}-{kind}", "detail-type": topic,
        "source": "aws.partner/genesys.com/cloud/00000000-0000-4000-8000-00000000cc01/ccpulse",
        "account": "111122223333", "region": "ap-northeast-1", "resources": [],
        "detail": {"topicName": topic, "version": "2", "eventBody": body, "metadata": {"CorrelationId": contact}},
    }).decode()  # fmt: skip
