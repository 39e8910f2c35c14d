"""Genesys Cloud conversation detail events as contract events (``ccpulse convert --from genesys-cloud``).

Pure: records in, events (dicts in the contract's JSON form) out; the only clock is the events'
own ``eventTime``. Reads the analytics detail events of a conversation, one per line, as the
EventBridge integration delivers them (``{"detail-type": "v2.detail.events.conversation.<id>.acd.end",
"detail": {"topicName": ..., "eventBody": {...}}}``), as the notification service does
(``{"topicName": ..., "eventBody": {...}}``), or a JSON array of them. The topics read:
``acd.start``, ``acd.end``, ``user.end``, ``acw`` and ``attributes``; the others are skipped by
name. What each becomes, and why: docs/sources.md ("Genesys Cloud").

A conversation's time in one queue is the contact ``genesys:<conversationId>:<queueId>`` (a
transfer to another queue is a new contact there, as Genesys counts ``nOffered`` per queue); ids are
``genesys-<conversationId>-<queueId>-<kind>``, so a replayed stream counts nothing twice.

State (bounded, restart-safe through :meth:`DetailEvents.snapshot` / :meth:`DetailEvents.restore`):
per conversation its attributes, per contact its agent's talk and hold until its wrap-up. A contact
ends at its ``acw`` event; one whose wrap-up does not come within ``ACW_WAIT_MS`` of event time
after its agent's ``user.end`` (a queue without after-call work) ends at that ``user.end``.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.sources.asterisk import Outcome, merged, queue_name
from pipeline.timefmt import rfc3339

MAX_OPEN = 100_000
ACW_WAIT_MS = 15 * 60 * 1000
TOPIC = re.compile(r"^v2\.detail\.events\.conversation\.([^.]+)\.(.+)$")
VOICE_LIKE = {"VOICE": "voice", "CHAT": "chat", "EMAIL": "email"}
MESSAGES = {"SMS": "sms", "WEBMESSAGING": "chat", "OPEN": "chat"}  # any other message type is social
TRANSFERS = {"TRANSFER", "CONSULT_TRANSFER", "FORWARD_TRANSFER", "CONFERENCE_TRANSFER"}


@dataclass
class Contact:
    agent: str | None = None
    talk_ms: int | None = None  # from the agent's user.end
    hold_ms: int = 0
    left_ms: int | None = None  # the user.end's time
    transferred: bool = False


class DetailEvents:
    """A stream of conversation detail events, in the order Genesys published them."""

    def __init__(self) -> None:
        self.attributes: dict[str, dict[str, str]] = {}  # conversation -> the flow's attributes
        self.contacts: dict[str, Contact] = {}  # "<conversation>:<queue>" -> an answered contact
        self.latest_ms = 0  # the latest eventTime seen: the stream's clock
        self._awaiting: list[tuple[int, str]] = []  # (user.end time, key), a heap: the wrap-ups due

    def line(self, raw: bytes | str) -> Outcome:
        text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).strip()
        if not text:
            return Outcome(skipped="blank")
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as problem:
            return Outcome(rejected="unreadable", detail=f"not JSON: {problem}")
        items = document if isinstance(document, list) else [document]
        if not items or not all(isinstance(item, dict) for item in items):
            return Outcome(rejected="unreadable", detail="not a JSON object or an array of objects")
        return merged([self.record(item) for item in items])

    def record(self, item: dict[str, Any]) -> Outcome:
        wrapped = item.get("detail")
        detail: dict[str, Any] = wrapped if isinstance(wrapped, dict) else item
        topic = str(detail.get("topicName") or item.get("detail-type") or "")
        matched = TOPIC.match(topic)
        body = detail.get("eventBody")
        if matched is None or not isinstance(body, dict):
            return Outcome(skipped="not_a_detail_event")
        kind = matched.group(2)
        handler = HANDLERS.get(kind)
        if handler is None:
            return Outcome(skipped=kind)
        try:
            now = int(body["eventTime"])
            conversation = str(body.get("conversationId") or matched.group(1))
            self.latest_ms = max(self.latest_ms, now)
            outcome = handler(self, body, conversation, now)
        except (KeyError, TypeError, ValueError) as problem:
            return Outcome(rejected="bad_event", detail=f"{kind} of {matched.group(1)}: {problem}")
        late = self._waited_out()
        if late:
            outcome = Outcome(events=(*outcome.events, *late), skipped=outcome.skipped, rejected=outcome.rejected,
                              detail=outcome.detail)  # fmt: skip
        if not outcome.events and not outcome.rejected and not outcome.skipped:
            return Outcome(skipped=f"{kind} (waits for its wrap-up)" if kind == "user.end" else kind)
        return outcome

    # ------------------------------------------------------------------ topics
    def attributes_update(self, body: dict[str, Any], conversation: str, now: int) -> Outcome:
        given = body.get("attributes") or {}
        if not isinstance(given, dict):
            raise ValueError("attributes is not an object")
        kept = self.attributes.setdefault(conversation, {})
        kept.update({name: str(given[name]) for name in ("reason", "case_id", "resolved") if given.get(name)})
        self._bound(self.attributes)
        return Outcome()

    def acd_start(self, body: dict[str, Any], conversation: str, now: int) -> Outcome:
        if str(body.get("direction") or "INBOUND").upper() == "OUTBOUND":
            return Outcome(skipped="outbound")
        channel = channel_of(body)
        if channel is None:
            return Outcome(skipped=f"media_{str(body.get('mediaType') or 'unknown').lower()}")
        raw_queue = str(body["queueId"])
        offered: dict[str, object] = {
            **base(conversation, raw_queue, "offered"), "type": "contact.offered", "occurred_at": stamp(now),
            "queue": queue_name(raw_queue), "channel": channel, "customer_id": customer_of(conversation, body),
        }  # fmt: skip
        attributes = self.attributes.get(conversation, {})
        for name, longest in (("reason", 64), ("case_id", 128)):
            if attributes.get(name):
                offered[name] = attributes[name][:longest]
        return Outcome(events=(offered,))

    def acd_end(self, body: dict[str, Any], conversation: str, now: int) -> Outcome:
        queue, outcome = str(body["queueId"]), str(body.get("acdOutcome") or "").upper()
        if outcome == "ANSWERED":
            agent = str(body.get("answeredUserId") or "")
            if not agent:
                raise ValueError("answered, but no answeredUserId")
            self.contacts.setdefault(f"{conversation}:{queue}", Contact(agent=agent[:128]))  # a repeat keeps its state
            self._bound(self.contacts)
            return Outcome(events=({**base(conversation, queue, "answered"), "type": "contact.answered",
                                    "occurred_at": stamp(now), "agent_id": agent[:128]},))  # fmt: skip
        if outcome == "ABANDON":
            return Outcome(events=({**base(conversation, queue, "abandoned"), "type": "contact.abandoned",
                                    "occurred_at": stamp(now)},))  # fmt: skip
        if outcome == "FLOW_OUT":  # left the queue by the flow (a timeout, a transfer out): not abandoned
            return Outcome(events=({**base(conversation, queue, "ended"), "type": "contact.ended",
                                    "occurred_at": stamp(now), "resolved": False},))  # fmt: skip
        return Outcome(skipped=f"acd.end {outcome.lower() or 'without an outcome'}")

    def user_end(self, body: dict[str, Any], conversation: str, now: int) -> Outcome:
        contact = self.contacts.get(f"{conversation}:{body.get('queueId')}")
        if contact is None or contact.talk_ms is not None:
            return Outcome(skipped="user.end")  # not an answered contact of ours, or said already
        interacting, held = int(body.get("interactingDurationMs") or 0), int(body.get("heldDurationMs") or 0)
        contact.talk_ms, contact.hold_ms, contact.left_ms = max(0, interacting - held), held, now
        contact.transferred = str(body.get("disconnectType") or "").upper() in TRANSFERS
        heapq.heappush(self._awaiting, (now, f"{conversation}:{body.get('queueId')}"))
        if contact.transferred:  # the agent passed it on (blind, consult, forward, conference)
            return Outcome(events=({**base(conversation, str(body.get("queueId")), "transferred"),
                                    "type": "contact.transferred", "occurred_at": stamp(now)},))  # fmt: skip
        return Outcome()

    def acw(self, body: dict[str, Any], conversation: str, now: int) -> Outcome:
        key = f"{conversation}:{body.get('queueId')}"
        contact = self.contacts.get(key)
        if contact is None or contact.talk_ms is None:
            return Outcome(skipped="acw")
        del self.contacts[key]
        acw_ms = int(body.get("wrapupDurationMs") or 0)
        return Outcome(events=(self._ended(key, contact, now, acw_ms),))

    # ------------------------------------------------------------------ ends
    def _waited_out(self) -> list[dict[str, object]]:
        """Contacts whose wrap-up has not come ``ACW_WAIT_MS`` after their user.end: they end there."""
        ended = []
        while self._awaiting and self.latest_ms - self._awaiting[0][0] > ACW_WAIT_MS:
            left_ms, key = heapq.heappop(self._awaiting)
            contact = self.contacts.get(key)
            if contact is not None and contact.left_ms == left_ms:  # not ended by its acw since
                ended.append(self._ended(key, self.contacts.pop(key), None, 0))
        return ended

    def _ended(self, key: str, contact: Contact, at_ms: int | None, acw_ms: int) -> dict[str, object]:
        conversation, queue = key.split(":", 1)
        given = self.attributes.get(conversation, {}).get("resolved", "").strip().lower()
        resolved = given == "true" if given in ("true", "false") else not contact.transferred
        return {
            **base(conversation, queue, "ended"), "type": "contact.ended",
            "occurred_at": stamp(at_ms if at_ms is not None else contact.left_ms or 0),
            "talk_seconds": (contact.talk_ms or 0) / 1000, "hold_seconds": contact.hold_ms / 1000,
            "acw_seconds": acw_ms / 1000, "resolved": resolved,
        }  # fmt: skip

    def _bound(self, table: dict[str, Any]) -> None:
        while len(table) > MAX_OPEN:
            del table[next(iter(table))]  # the oldest, never finished: forgotten

    # ------------------------------------------------------------------ restarts
    def snapshot(self) -> dict[str, Any]:
        return {"attributes": self.attributes, "latest_ms": self.latest_ms,
                "contacts": {key: asdict(contact) for key, contact in self.contacts.items()}}  # fmt: skip

    def restore(self, saved: dict[str, Any]) -> None:
        self.attributes = {key: dict(value) for key, value in saved.get("attributes", {}).items()}
        self.contacts = {key: Contact(**value) for key, value in saved.get("contacts", {}).items()}
        self.latest_ms = int(saved.get("latest_ms", 0))
        self._awaiting = [(c.left_ms, key) for key, c in self.contacts.items() if c.left_ms is not None]
        heapq.heapify(self._awaiting)


HANDLERS = {
    "attributes": DetailEvents.attributes_update,
    "acd.start": DetailEvents.acd_start,
    "acd.end": DetailEvents.acd_end,
    "user.end": DetailEvents.user_end,
    "acw": DetailEvents.acw,
}


def base(conversation: str, queue: str, kind: str) -> dict[str, object]:
    return {"event_id": f"genesys-{conversation}-{queue}-{kind}"[:128], "schema_version": 1,
            "contact_id": f"genesys:{conversation}:{queue}"[:128]}  # fmt: skip


def stamp(ms: int) -> str:
    return rfc3339(datetime.fromtimestamp(ms / 1000, UTC))


def channel_of(body: dict[str, Any]) -> str | None:
    media = str(body.get("mediaType") or "").upper()
    if media == "MESSAGE":
        return MESSAGES.get(str(body.get("messageType") or "").upper(), "social")
    return VOICE_LIKE.get(media)


def customer_of(conversation: str, body: dict[str, Any]) -> str:
    """The caller's number (``ani``, without its ``tel:``) or the sender's address; none, or a
    withheld number: ``anonymous:<conversationId>``."""
    raw = str(body.get("ani") or body.get("addressFrom") or "").strip()
    value = re.sub(r"^(tel|sip):", "", raw)
    if not value or value.lower() in ("anonymous", "unknown", "restricted", "private", "unavailable"):
        return f"anonymous:{conversation}"[:128]
    return value[:128]
