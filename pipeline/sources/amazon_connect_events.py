"""Amazon Connect's contact events (EventBridge) and agent events (Kinesis) as contract events.

Pure, and without state: each contact event carries what Connect knows of the contact so far
(``queueInfo``, ``agentInfo``, ``disconnectTimestamp``), each agent event the agent's snapshot
before and after it. The field names are those of Connect's "Contact events data model"
(``detail.eventType``, ``contactId``, ``channel``, ``initiationMethod``,
``queueInfo{queueArn, enqueueTimestamp}``, ``agentInfo{agentArn, connectedToAgentTimestamp,
afterContactWorkEndTimestamp, afterContactWorkDuration}``, ``disconnectTimestamp``,
``disconnectReason``) and "Agent event streams data model" (``EventId``, ``EventType``,
``EventTimestamp``, ``CurrentAgentSnapshot`` / ``PreviousAgentSnapshot`` with ``AgentStatus{Name,
Type}``, ``Configuration{Username, RoutingProfile{InboundQueues[{ARN}]}}``,
``Contacts[{ContactId, State}]``). Contact events name a queue only by its ARN: queues are named
by the queue id (the ARN's last part) here, in both kinds of events, where contact records give
names. Ids are those of the contact records' adapter
(``connect-<ContactId>-<kind>``), so records and events of one contact count once. What each
becomes, and why: docs/sources.md ("Amazon Connect contact events and agent events").
"""

from __future__ import annotations

from typing import Any

from pipeline.sources.asterisk import Outcome, queue_name
from pipeline.timefmt import rfc3339

COUNTED_METHODS = {"INBOUND", "API", "TRANSFER", "QUEUE_TRANSFER"}  # as the records (amazon_connect.py)
CHANNELS = {"VOICE": "voice", "CHAT": "chat", "EMAIL": "email"}
TALKING = {"CONNECTED", "CONNECTED_ONHOLD"}


def contact_event(detail: dict[str, Any], parse_time: Any) -> Outcome:
    """One ``Amazon Connect Contact Event`` (its ``detail``)."""
    kind = str(detail.get("eventType") or "")
    if kind not in ("QUEUED", "CONNECTED_TO_AGENT", "DISCONNECTED", "COMPLETED"):
        return Outcome(skipped=f"contact_event_{kind.lower() or 'unknown'}")
    contact = str(detail["contactId"])
    method = str(detail.get("initiationMethod") or "")
    if method not in COUNTED_METHODS:
        return Outcome(skipped=f"initiation_{method.lower() or 'unknown'}")
    channel = CHANNELS.get(str(detail.get("channel") or "").upper())
    if channel is None:
        return Outcome(skipped=f"channel_{str(detail.get('channel') or 'unknown').lower()}")
    queued = (detail.get("queueInfo") or {}).get("enqueueTimestamp")
    if not queued:
        return Outcome(skipped="not_queued")
    base = {"schema_version": 1, "contact_id": f"connect:{contact}"[:128]}
    agent = detail.get("agentInfo") or {}
    connected = agent.get("connectedToAgentTimestamp")

    def event(kind: str, at: str, **fields: object) -> dict[str, object]:
        return {**base, "event_id": f"connect-{contact}-{kind}", "type": f"contact.{kind}",
                "occurred_at": rfc3339(parse_time(at)), **fields}  # fmt: skip

    if kind == "QUEUED":
        queue_id = str(detail["queueInfo"].get("queueArn") or "").rsplit("/", 1)[-1]
        if not queue_id:
            raise ValueError("queued, but queueInfo names no queueArn")
        customer = (detail.get("customerEndpoint") or {}).get("address")
        who = str(customer)[:128] if customer else f"anonymous:{contact}"[:128]
        return Outcome(events=(event("offered", queued, queue=queue_name(queue_id), channel=channel, customer_id=who),))
    if kind == "CONNECTED_TO_AGENT":
        if not connected:
            raise ValueError("connected to an agent, but agentInfo has no connectedToAgentTimestamp")
        return Outcome(events=(event("answered", connected, agent_id=agent_id(agent)),))
    left = detail.get("disconnectTimestamp")
    if not left:
        raise ValueError(f"{kind} without a disconnectTimestamp")
    if connected is None:  # queued, never connected: the same rule as the contact records'
        if kind == "COMPLETED":
            return Outcome(skipped="contact_event_completed")  # said at DISCONNECTED
        if str(detail.get("disconnectReason") or "CUSTOMER_DISCONNECT") == "CUSTOMER_DISCONNECT":
            return Outcome(events=(event("abandoned", left),))
        return Outcome(events=(event("ended", left, resolved=False),))
    if kind == "DISCONNECTED":
        return Outcome(skipped="contact_event_disconnected")  # the end comes with COMPLETED, after the work
    ended = agent.get("afterContactWorkEndTimestamp") or left
    talk = (parse_time(left) - parse_time(connected)).total_seconds()
    return Outcome(events=(event("ended", ended, talk_seconds=max(0.0, talk),
                                 acw_seconds=float(agent.get("afterContactWorkDuration") or 0),
                                 resolved=resolved(detail)),))  # fmt: skip


def agent_event(record: dict[str, Any], parse_time: Any) -> Outcome:
    """One agent event of the Kinesis agent event stream: an ``agent.state_changed`` when the
    agent's state (or queues) in the contract's terms differs from before it."""
    kind = str(record.get("EventType") or "")
    if kind == "HEART_BEAT":
        return Outcome(skipped="agent_heart_beat")
    if kind not in ("LOGIN", "LOGOUT", "STATE_CHANGE"):
        return Outcome(skipped=f"agent_event_{kind.lower() or 'unknown'}")
    current = record.get("CurrentAgentSnapshot") or {}
    name = (current.get("Configuration") or {}).get("Username") or str(record["AgentARN"]).rsplit("/", 1)[-1]
    now = state_of(current, logged_out=kind == "LOGOUT")
    before = None if kind == "LOGIN" else state_of(record.get("PreviousAgentSnapshot") or {}, logged_out=False)
    if now == before:
        return Outcome(skipped="agent_event_no_change")
    state, queues = now
    return Outcome(events=({
        "event_id": f"connect-agent-{record['EventId']}", "type": "agent.state_changed", "schema_version": 1,
        "occurred_at": rfc3339(parse_time(str(record["EventTimestamp"]))), "agent_id": str(name)[:128],
        "state": state, "queues": list(queues),
    },))  # fmt: skip


def state_of(snapshot: dict[str, Any], logged_out: bool) -> tuple[str, tuple[str, ...]]:
    """The contract's state of an agent snapshot: on a contact while connected to one (held
    too), after-contact work while a contact it had has ended (ACW), else its status: routable is
    available, offline is offline, any other (Break, Lunch, a center's own) is away."""
    profile = (snapshot.get("Configuration") or {}).get("RoutingProfile") or {}
    queues = tuple(
        sorted(queue_name(str(q["ARN"]).rsplit("/", 1)[-1]) for q in profile.get("InboundQueues") or [] if q.get("ARN"))
    )  # by id, as contact events name them
    states = {str(contact.get("State") or "") for contact in snapshot.get("Contacts") or []}
    status = snapshot.get("AgentStatus") or {}
    if logged_out:
        return "offline", queues
    if states & TALKING:
        return "on_contact", queues
    if "ENDED" in states:
        return "after_contact_work", queues
    kind = str(status.get("Type") or "").upper()
    named = str(status.get("Name") or "").lower()
    if kind == "OFFLINE" or named == "offline":
        return "offline", queues
    return ("available" if kind == "ROUTABLE" or named == "available" else "away"), queues


def agent_id(agent: dict[str, Any]) -> str:
    name = str(agent.get("agentArn") or "").rsplit("/", 1)[-1]
    if not name:
        raise ValueError("connected to an agent, but agentInfo names no agentArn")
    return name[:128]


def resolved(detail: dict[str, Any]) -> bool:
    given = str((detail.get("attributes") or {}).get("resolved", "")).strip().lower()
    if given in ("true", "false"):
        return given == "true"
    return not detail.get("nextContactId")
