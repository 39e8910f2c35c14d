"""Contract events as Amazon Connect would have recorded them (``ccpulse simulate --as amazon-connect``).

Pure. Writes one contact record per contact of a stream of contract events (the simulator's), when
the contact is over (abandoned, or ended): voice, chat and email contacts, with the fields
``pipeline.sources.amazon_connect`` reads (Connect's contact record data model). Durations are
whole seconds, as Connect records them; the contact's reason and case travel as contact
attributes (``reason``, ``case_id``), its disposition as ``resolved``. A contact that ended
without an agent and without the customer hanging up (the simulator's queue timeout) is recorded
with ``DisconnectReason: CONTACT_FLOW_DISCONNECT``. Surveys and agent states are not contact
records and are not written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import orjson

from pipeline.sources.amazon_connect import parse_time
from pipeline.sources.asterisk_out import number
from pipeline.timefmt import rfc3339

CHANNELS = {"voice": "VOICE", "chat": "CHAT", "email": "EMAIL"}
INSTANCE = "arn:aws:connect:ap-northeast-1:111122223333:instance/00000000-0000-4000-8000-00000000cc01"


def contact_records(events: Iterable[dict[str, object]]) -> Iterator[str]:
    """The records, one JSON line each, in the order the contacts finished."""
    open_contacts: dict[str, dict[str, Any]] = {}
    for event in events:
        kind, contact = event.get("type"), str(event.get("contact_id", ""))
        if kind == "contact.offered":
            if event.get("channel") in CHANNELS and contact not in open_contacts:
                open_contacts[contact] = _record(event)
            continue
        record = open_contacts.get(contact)
        if record is None:
            continue
        at = str(event["occurred_at"])
        if kind == "contact.answered" and record["Agent"] is None:
            record["Queue"].update(DequeueTimestamp=at, Duration=_whole(record["Queue"]["EnqueueTimestamp"], at))
            record["Agent"] = {"ARN": f"{INSTANCE}/agent/{event['agent_id']}", "Username": event["agent_id"],
                               "ConnectedToAgentTimestamp": at}  # fmt: skip
        elif kind == "contact.abandoned" and record["Agent"] is None:
            del open_contacts[contact]
            record["Queue"].update(DequeueTimestamp=at, Duration=_whole(record["Queue"]["EnqueueTimestamp"], at))
            yield _line(record, disconnected=at, reason="CUSTOMER_DISCONNECT")
        elif kind == "contact.ended":
            del open_contacts[contact]
            record["Attributes"]["resolved"] = "true" if event.get("resolved") else "false"
            if record["Agent"] is None:  # left the queue unanswered, not by the customer's choice
                record["Queue"].update(DequeueTimestamp=at, Duration=_whole(record["Queue"]["EnqueueTimestamp"], at))
                yield _line(record, disconnected=at, reason="CONTACT_FLOW_DISCONNECT")
                continue
            work_started = _ended(record, event, at)
            yield _line(record, disconnected=work_started, reason="CUSTOMER_DISCONNECT")


def _record(offered: dict[str, object]) -> dict[str, Any]:
    contact = str(offered["contact_id"])
    attributes = {name: str(offered[name]) for name in ("reason", "case_id") if offered.get(name) is not None}
    return {
        "AWSAccountId": "111122223333", "AWSContactTraceRecordFormatVersion": "2017-03-10", "InstanceARN": INSTANCE,
        "ContactId": contact, "InitiationMethod": "INBOUND", "Channel": CHANNELS[str(offered["channel"])],
        "InitiationTimestamp": offered["occurred_at"], "CustomerEndpoint": {"Address": offered["customer_id"],
        "Type": "TELEPHONE_NUMBER"}, "Queue": {"ARN": f"{INSTANCE}/queue/{offered['queue']}",
        "Name": offered["queue"], "EnqueueTimestamp": offered["occurred_at"]}, "Agent": None,
        "Attributes": attributes, "DisconnectTimestamp": None,
    }  # fmt: skip


def _ended(record: dict[str, Any], ended: dict[str, object], at: str) -> str:
    """Fill in the agent's part of an answered contact that ended at ``at`` (the end of its
    after-contact work); returns when that work began (the customer's disconnect)."""
    talk, hold, acw = (round(number(ended.get(name))) for name in ("talk_seconds", "hold_seconds", "acw_seconds"))
    work_start = rfc3339(parse_time(at) - timedelta(seconds=acw))
    record["Agent"].update(AgentInteractionDuration=talk, CustomerHoldDuration=hold, AfterContactWorkDuration=acw,
                           AfterContactWorkStartTimestamp=work_start, AfterContactWorkEndTimestamp=at,
                           NumberOfHolds=1 if hold else 0)  # fmt: skip
    return work_start


def _line(record: dict[str, Any], disconnected: str, reason: str) -> str:
    record.update(DisconnectTimestamp=disconnected, DisconnectReason=reason, LastUpdateTimestamp=disconnected)
    return orjson.dumps(record).decode()


def _whole(since: str, until: str) -> int:
    return int((parse_time(until) - parse_time(since)).total_seconds())
