"""Contract events as TaskRouter would have posted them (``ccpulse simulate --as twilio-taskrouter``).

Pure. Writes the event callbacks (form-encoded, one body per line, with the parameters
``pipeline.sources.twilio`` reads) of the contacts in a stream of contract events (the
simulator's), as TaskRouter sends them for a task: ``task-queue.entered`` when it is offered,
``reservation.accepted`` when answered, ``reservation.wrapup`` when the after-contact work begins,
``task.completed`` at its end, ``task.canceled`` (reason ``hangup``) when abandoned, or with reason
``Task TTL Exceeded`` when it ended unanswered. Times carry milliseconds (``TimestampMs``).
TaskRouter records no hold: a contact's hold time comes back as talk time. Agent states and
surveys are not written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import orjson

from pipeline.sources.asterisk_out import number

WORKSPACE = "WS" + "0" * 31 + "1"


@dataclass
class Open:
    queue: str
    channel: str
    attributes: dict[str, object]
    agent: str | None = None


def milliseconds(occurred_at: object) -> int:
    return round(datetime.fromisoformat(str(occurred_at).replace("Z", "+00:00")).timestamp() * 1000)


def callbacks(events: Iterable[dict[str, object]]) -> Iterator[str]:
    """The callback bodies, in the events' order (the simulator's is time order)."""
    tasks: dict[str, Open] = {}
    for event in events:
        kind, contact = event.get("type"), str(event.get("contact_id", ""))
        if kind == "contact.offered":
            if contact not in tasks:
                task = tasks[contact] = _task(event)
                yield _body("task-queue.entered", contact, task, milliseconds(event["occurred_at"]))
            continue
        found = tasks.get(contact)
        if found is None:
            continue
        at = milliseconds(event["occurred_at"])
        if kind == "contact.answered" and found.agent is None:
            found.agent = str(event["agent_id"])
            yield _body("reservation.accepted", contact, found, at)
        elif kind == "contact.abandoned" and found.agent is None:
            del tasks[contact]
            yield _body("task.canceled", contact, found, at, TaskCanceledReason="hangup")
        elif kind == "contact.ended":
            del tasks[contact]
            yield from _ended(event, contact, found, at)


def _ended(event: dict[str, object], contact: str, task: Open, at: int) -> Iterator[str]:
    if task.agent is None:
        yield _body("task.canceled", contact, task, at, TaskCanceledReason="Task TTL Exceeded")
        return
    task.attributes["resolved"] = bool(event.get("resolved"))
    acw = round(number(event.get("acw_seconds")) * 1000)
    if acw:
        yield _body("reservation.wrapup", contact, task, at - acw)
    yield _body("task.completed", contact, task, at, TaskCompletedReason="Task completed")


def _task(offered: dict[str, object]) -> Open:
    channel = str(offered["channel"])
    attributes: dict[str, object] = {"from": offered["customer_id"], "direction": "inbound"}
    if channel == "social":
        attributes["channelType"] = "whatsapp"
    for name in ("reason", "case_id"):
        if offered.get(name) is not None:
            attributes[name] = offered[name]
    return Open(str(offered["queue"]), "chat" if channel == "social" else channel, attributes)


def _body(kind: str, sid: str, task: Open, at: int, **extra: str) -> str:
    fields = {
        "EventType": kind, "Sid": f"EV-{sid}-{kind}", "WorkspaceSid": WORKSPACE, "Timestamp": str(at // 1000),
        "TimestampMs": str(at), "TaskSid": sid, "TaskQueueName": task.queue, "TaskChannelUniqueName": task.channel,
        "TaskAttributes": orjson.dumps(task.attributes).decode(), **extra,
    }  # fmt: skip
    if kind == "task-queue.entered":
        fields["TaskQueueEnteredDate"] = str(at // 1000)
        fields["ResourceType"] = "Task"
    if task.agent is not None:
        fields.update(WorkerName=task.agent, WorkerSid=f"WK-{task.agent}")
    return urlencode(fields)
