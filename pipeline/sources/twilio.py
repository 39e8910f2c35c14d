"""Twilio TaskRouter events as contract events (``ccpulse convert --from twilio-taskrouter``).

Pure: records in, events (dicts in the contract's JSON form) out; no clock, no I/O. Reads both
forms TaskRouter delivers its events in:

- **event callbacks** as posted to a workspace's ``EventCallbackUrl``: form-encoded
  (``EventType=task.created&TaskSid=WT...&Timestamp=...``, one body per line) or the same
  parameters as a JSON object (``{"EventType": ..., "TaskSid": ...}``);
- **Event Streams** (CloudEvents, ``type: com.twilio.taskrouter.<event>``, the TaskRouter event in
  ``data.payload`` with snake_case names), one event or a JSON array of them per line.

Both are brought to one record of snake_case names (``TaskQueueName`` → ``task_queue_name``). A
task is the contact ``twilio:<TaskSid>``; its events' ids are ``twilio-<TaskSid>-<kind>``, so a
retried callback, a re-read file or a replayed topic counts nothing twice. What each event
becomes, and why: docs/sources.md ("Twilio TaskRouter").

State (bounded, restart-safe through :meth:`TaskRouter.snapshot` / :meth:`TaskRouter.restore`):
per open task its queue entry, acceptance and wrap-up times and worker; per worker its activity
and the tasks it holds. At most ``MAX_OPEN_TASKS`` tasks are kept (the oldest is forgotten first).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson

from pipeline.sources.asterisk import Outcome, merged, queue_name
from pipeline.timefmt import rfc3339

MAX_OPEN_TASKS = 100_000
CHANNELS = {"voice": "voice", "chat": "chat", "sms": "sms", "email": "email"}
SOCIAL = {"whatsapp", "facebook", "messenger", "instagram", "line", "twitter", "x", "kakaotalk", "wechat"}
ACTIVITY_STATES = {"available": "available", "offline": "offline"}  # any other activity is away
LEFT_BY_CUSTOMER = re.compile(r"hang ?up|abandon|customer (left|ended|disconnect)|caller", re.IGNORECASE)
SKIPPED = {
    "task.created", "task.updated", "task.system-deleted", "task-queue.moved", "task-queue.timeout",
    "reservation.created", "reservation.rejected", "reservation.timeout", "reservation.canceled",
    "reservation.rescinded", "reservation.failed", "workflow.entered", "workflow.target-matched",
    "workflow.skipped", "workflow.timeout", "worker.created", "worker.deleted", "worker.attributes.update",
    "worker.capacity.update", "worker.channel.availability.update", "task-queue.created", "task-queue.deleted",
    "task-queue.expression.updated", "activity.created", "activity.updated", "activity.deleted",
    "workflow.created", "workflow.updated", "workflow.deleted", "task-channel.created", "task-channel.updated",
    "task-channel.deleted", "workspace.created", "workspace.updated", "workspace.deleted",
}  # fmt: skip


@dataclass
class Task:
    """What a task's later events need from its earlier ones."""

    entered: float | None = None  # Unix seconds
    accepted: float | None = None
    wrapup: float | None = None
    released: float | None = None  # the reservation completed: the after-contact work is over
    worker: str | None = None


@dataclass
class Worker:
    activity: str = "available"
    queues: list[str] = field(default_factory=list)
    tasks: dict[str, str] = field(default_factory=dict)  # task sid -> "talking" | "wrapping"
    state: str | None = None  # the last state sent


class TaskRouter:
    """A stream of TaskRouter events, record by record, in the order TaskRouter sent them."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.workers: dict[str, Worker] = {}

    def line(self, raw: bytes | str) -> Outcome:
        text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).strip()
        if not text:
            return Outcome(skipped="blank")
        try:
            records = parse(text)
        except ValueError as problem:
            return Outcome(rejected="unreadable", detail=str(problem))
        return merged([self.record(record) for record in records])

    def record(self, record: dict[str, Any]) -> Outcome:
        """One TaskRouter event, its names in snake_case (see :func:`parse`)."""
        kind = str(record.get("event_type") or record.get("eventtype") or "")
        try:
            if kind.startswith(("task-queue.entered", "reservation.", "task.")) and not record.get("task_sid"):
                return Outcome(rejected="no_task", detail=f"{kind} names no TaskSid")
            handler = HANDLERS.get(kind)
            if handler is None:
                return Outcome(skipped=kind if kind in SKIPPED else (kind or "no_event_type"))
            outcome = handler(self, record)
            if not outcome.events and not outcome.rejected and not outcome.skipped:
                return Outcome(skipped=f"{kind} (no change)")  # e.g. a wrap-up while the worker talks on another task
            return outcome
        except (KeyError, TypeError, ValueError) as problem:
            return Outcome(rejected="bad_event", detail=f"{kind} {record.get('task_sid') or ''}: {problem}".strip())

    # ------------------------------------------------------------------ tasks
    def entered(self, record: dict[str, Any]) -> Outcome:
        sid = str(record["task_sid"])
        attributes = task_attributes(record)
        if str(attributes.get("direction", "inbound")).lower() == "outbound":
            return Outcome(skipped="outbound")
        channel = channel_of(record, attributes)
        if channel is None:
            return Outcome(skipped=f"channel_{record.get('task_channel_unique_name') or 'unknown'}")
        if sid in self.tasks and self.tasks[sid].entered is not None:
            return Outcome(skipped="task-queue.entered again")  # a move: the contact stays in its first queue
        raw_queue = str(record.get("task_queue_name") or record.get("task_queue_sid") or "")
        if not raw_queue:
            return Outcome(rejected="no_queue", detail=f"task {sid}: no TaskQueueName")
        at = event_time(record)  # the event is the entry (TaskQueueEnteredDate is whole seconds at best)
        self._task(sid).entered = at
        queue = queue_name(raw_queue)
        offered: dict[str, object] = {
            **base(sid, "offered"), "type": "contact.offered", "occurred_at": stamp(at), "queue": queue,
            "channel": channel, "customer_id": customer_of(sid, attributes),
        }  # fmt: skip
        if queue != raw_queue:
            offered["twilio_queue"] = raw_queue
        for name, longest in (("reason", 64), ("case_id", 128)):
            if attributes.get(name):
                offered[name] = str(attributes[name])[:longest]
        return Outcome(events=(offered,))

    def accepted(self, record: dict[str, Any]) -> Outcome:
        sid, at = str(record["task_sid"]), event_time(record)
        task = self._task(sid)
        if task.accepted is not None:
            return Outcome(skipped="reservation.accepted again")
        agent = worker_of(record)
        task.accepted, task.worker = at, agent
        answered = {**base(sid, "answered"), "type": "contact.answered", "occurred_at": stamp(at), "agent_id": agent}
        return Outcome(events=(answered, *self._agent(record, agent, at, holds=(sid, "talking"))))

    def wrapup(self, record: dict[str, Any]) -> Outcome:
        sid, at = str(record["task_sid"]), event_time(record)
        task = self.tasks.get(sid)
        if task is None or task.accepted is None or task.wrapup is not None:
            return Outcome(skipped="reservation.wrapup")
        task.wrapup = at
        return Outcome(events=tuple(self._agent(record, task.worker or worker_of(record), at, holds=(sid, "wrapping"))))

    def reservation_completed(self, record: dict[str, Any]) -> Outcome:
        sid, at = str(record["task_sid"]), event_time(record)
        agent = worker_of(record)
        if sid in self.tasks:
            self.tasks[sid].released = at
        if sid not in self.workers.get(agent, Worker()).tasks:
            return Outcome(skipped="reservation.completed")
        return Outcome(events=tuple(self._agent(record, agent, at, holds=(sid, None))))

    def completed(self, record: dict[str, Any]) -> Outcome:
        sid, at = str(record["task_sid"]), event_time(record)
        task = self.tasks.pop(sid, None) or Task()
        if task.accepted is None:
            return Outcome(events=(self._unanswered(sid, at),))
        at = task.released if task.released is not None else at  # the work ended with the reservation
        talk_until = task.wrapup if task.wrapup is not None else at
        ended = {
            **base(sid, "ended"), "type": "contact.ended", "occurred_at": stamp(at),
            "talk_seconds": round(max(0.0, talk_until - task.accepted), 3),
            "acw_seconds": round(max(0.0, at - talk_until), 3), "resolved": resolved(record),
        }  # fmt: skip
        freed = self._agent(record, task.worker, at, holds=(sid, None)) if task.worker else []
        return Outcome(events=(ended, *freed))

    def canceled(self, record: dict[str, Any]) -> Outcome:
        """Canceled before an agent accepted it: abandoned when the customer left (a hang-up),
        else ended unanswered (a timeout, the application's cancel). After an acceptance: ended."""
        sid, at = str(record["task_sid"]), event_time(record)
        task = self.tasks.get(sid)
        if task is not None and task.accepted is not None:
            return self.completed(record)
        self.tasks.pop(sid, None)
        why = str(record.get("task_canceled_reason") or record.get("reason") or "")
        if LEFT_BY_CUSTOMER.search(why):
            return Outcome(events=({**base(sid, "abandoned"), "type": "contact.abandoned", "occurred_at": stamp(at)},))
        return Outcome(events=(self._unanswered(sid, at),))

    def deleted(self, record: dict[str, Any]) -> Outcome:
        sid = str(record["task_sid"])
        if sid not in self.tasks:
            return Outcome(skipped="task.deleted")  # already over (or never offered)
        return self.completed(record)

    def _unanswered(self, sid: str, at: float) -> dict[str, object]:
        return {**base(sid, "ended"), "type": "contact.ended", "occurred_at": stamp(at), "resolved": False}

    def _task(self, sid: str) -> Task:
        if sid not in self.tasks and len(self.tasks) >= MAX_OPEN_TASKS:
            del self.tasks[next(iter(self.tasks))]  # the oldest task, never finished: forgotten
        return self.tasks.setdefault(sid, Task())

    # ------------------------------------------------------------------ workers
    def activity(self, record: dict[str, Any]) -> Outcome:
        agent, at = worker_of(record), event_time(record)
        name = str(record.get("worker_activity_name") or "")
        if not name:
            return Outcome(rejected="bad_event", detail=f"worker.activity.update for {agent}: no WorkerActivityName")
        worker = self.workers.setdefault(agent, Worker())
        worker.activity = ACTIVITY_STATES.get(name.strip().lower(), "away")
        return Outcome(events=tuple(self._agent(record, agent, at, holds=None)))

    def _agent(self, record: dict[str, Any], agent: str, at: float,
               holds: tuple[str, str | None] | None) -> list[dict[str, object]]:  # fmt: skip
        """The worker's state after this event, sent when it changed: on a contact while it
        talks on any task, after-contact work while it wraps any up, else its activity's state."""
        worker = self.workers.setdefault(agent, Worker())
        queues = worker_queues(record)
        if queues is not None:
            worker.queues = queues
        if holds is not None:
            sid, what = holds
            if what is None:
                worker.tasks.pop(sid, None)
            else:
                worker.tasks[sid] = what
        doing = set(worker.tasks.values())
        state = "on_contact" if "talking" in doing else "after_contact_work" if doing else worker.activity
        if state == worker.state:
            return []
        worker.state = state
        event_sid = str(record.get("sid") or f"{record.get('task_sid')}-{record.get('event_type')}")
        return [{"event_id": f"twilio-{event_sid}-{agent}-{state}"[:128], "type": "agent.state_changed",
                 "schema_version": 1, "occurred_at": stamp(at), "agent_id": agent, "state": state,
                 "queues": worker.queues}]  # fmt: skip

    # ------------------------------------------------------------------ restarts
    def snapshot(self) -> dict[str, Any]:
        """The state, as JSON: :meth:`restore` on a new converter goes on where this one is."""
        return {"tasks": {sid: asdict(task) for sid, task in self.tasks.items()},
                "workers": {name: asdict(worker) for name, worker in self.workers.items()}}  # fmt: skip

    def restore(self, saved: dict[str, Any]) -> None:
        self.tasks = {sid: Task(**task) for sid, task in saved.get("tasks", {}).items()}
        self.workers = {name: Worker(**worker) for name, worker in saved.get("workers", {}).items()}


HANDLERS = {
    "task-queue.entered": TaskRouter.entered,
    "reservation.accepted": TaskRouter.accepted,
    "reservation.wrapup": TaskRouter.wrapup,
    "reservation.completed": TaskRouter.reservation_completed,
    "task.completed": TaskRouter.completed,
    "task.canceled": TaskRouter.canceled,
    "task.deleted": TaskRouter.deleted,
    "task.wrapup": lambda self, record: Outcome(skipped="task.wrapup"),  # the reservation's wrap-up is read
    "worker.activity.update": TaskRouter.activity,
}


# ---------------------------------------------------------------------- reading
def parse(text: str) -> list[dict[str, Any]]:
    """The TaskRouter events in one line: a form-encoded callback body, a JSON callback, an
    Event Streams CloudEvent or a JSON array of them; names in snake_case."""
    if text[0] in "[{":
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as problem:
            raise ValueError(f"not JSON: {problem}") from None
        items = document if isinstance(document, list) else [document]
        if not items or not all(isinstance(item, dict) for item in items):
            raise ValueError("not a JSON object or an array of objects")
        return [_event(item) for item in items]
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    if not pairs or not any(name == "EventType" for name, _ in pairs):
        raise ValueError("neither JSON nor a form-encoded callback with an EventType")
    return [{snake(name): value for name, value in pairs}]


def _event(item: dict[str, Any]) -> dict[str, Any]:
    data = item.get("data")
    if isinstance(data, dict) and isinstance(data.get("payload"), dict):  # Event Streams
        payload = dict(data["payload"])
        if not payload.get("eventtype") and str(item.get("type", "")).startswith("com.twilio.taskrouter."):
            payload["eventtype"] = str(item["type"]).removeprefix("com.twilio.taskrouter.")
        return {snake(name): value for name, value in payload.items()}
    return {snake(name): value for name, value in item.items()}


def snake(name: str) -> str:
    """``TaskQueueName`` → ``task_queue_name``; ``eventtype`` (Event Streams) → ``event_type``."""
    if name == "eventtype":
        return "event_type"
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def event_time(record: dict[str, Any]) -> float:
    """When TaskRouter sent the event: ``TimestampMs``, else ``Timestamp`` (Unix seconds, or
    RFC 3339 in Event Streams)."""
    for name in ("timestamp_ms", "timestamp"):
        value = seconds(record.get(name))
        if value is not None:
            return value
    raise ValueError("no Timestamp")


def seconds(value: object) -> float | None:
    """Unix seconds from epoch seconds or milliseconds (numbers or digits) or an ISO 8601 time."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) or re.fullmatch(r"\d+(\.\d+)?", str(value)):
        number = float(value)  # type: ignore[arg-type]
        return number / 1000 if number > 100_000_000_000 else number
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def stamp(at: float) -> str:
    return rfc3339(datetime.fromtimestamp(at, UTC))


def base(sid: str, kind: str) -> dict[str, object]:
    return {"event_id": f"twilio-{sid}-{kind}"[:128], "schema_version": 1, "contact_id": f"twilio:{sid}"[:128]}


def task_attributes(record: dict[str, Any]) -> dict[str, Any]:
    raw = record.get("task_attributes") or "{}"
    attributes = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(attributes, dict):
        raise ValueError("TaskAttributes is not a JSON object")
    return attributes


def channel_of(record: dict[str, Any], attributes: dict[str, Any]) -> str | None:
    """The task channel (``voice``, ``chat``, ``sms``, ``email``); a chat whose ``channelType``
    is a social network (WhatsApp, Messenger, …) is ``social``."""
    name = str(record.get("task_channel_unique_name") or attributes.get("channelType") or "").lower()
    kind = str(attributes.get("channelType") or "").lower()
    if kind in SOCIAL:
        return "social"
    if name == "chat" and kind == "sms":
        return "sms"
    return CHANNELS.get(name)


def customer_of(sid: str, attributes: dict[str, Any]) -> str:
    """The customer: Flex's ``customers`` attributes (external id, phone, email), else ``from``;
    none: ``anonymous:<TaskSid>`` (joins no issue: no false repeat contacts)."""
    listed = attributes.get("customers")
    customers: dict[str, Any] = listed if isinstance(listed, dict) else {}
    for value in (customers.get("external_id"), customers.get("phone"), customers.get("email"), attributes.get("from")):
        if value and str(value).strip().lower() not in ("anonymous", "unknown", "restricted", "private"):
            return str(value)[:128]
    return f"anonymous:{sid}"[:128]


def worker_of(record: dict[str, Any]) -> str:
    name = record.get("worker_name") or record.get("worker_sid")
    if not name:
        raise ValueError("names no worker (WorkerName or WorkerSid)")
    return str(name)[:128]


def worker_queues(record: dict[str, Any]) -> list[str] | None:
    """The queues a worker serves, from its attributes (``queues``: a list of TaskQueue names), if
    the event carries them."""
    raw = record.get("worker_attributes")
    if not raw:
        return None
    attributes = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    listed = attributes.get("queues") if isinstance(attributes, dict) else None
    return [queue_name(str(queue)) for queue in listed] if isinstance(listed, list) else None


def resolved(record: dict[str, Any]) -> bool:
    """The task attribute ``resolved`` (``true``/``false``) when the flow or the agent sets one;
    else resolved unless the task was completed by a transfer."""
    given = str(task_attributes(record).get("resolved", "")).strip().lower()
    if given in ("true", "false"):
        return given == "true"
    return "transfer" not in str(record.get("task_completed_reason") or record.get("reason") or "").lower()


# ---------------------------------------------------------------------- webhook signatures
def signature(auth_token: str, url: str, params: list[tuple[str, str]] | None = None) -> str:
    """``X-Twilio-Signature`` for a request to ``url`` (as Twilio requested it, query included)
    with form ``params``: base64(HMAC-SHA1(auth token, url + each name and value, sorted by
    name, then value)). A JSON body is signed through the ``bodySHA256`` query parameter and no
    params (Twilio's "Validating requests" security documentation)."""
    data = url + "".join(name + value for name, value in sorted(set(params or [])))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def signed(auth_token: str, given: str, url: str, body: bytes, form: list[tuple[str, str]] | None) -> bool:
    """Whether ``given`` is Twilio's signature of this request: ``form`` (a form-encoded body's
    parameters) or a JSON ``body`` whose SHA-256 the URL's ``bodySHA256`` names. The URL is tried
    as given and with its default port added or removed (Twilio signs the URL as configured)."""
    if not given:
        return False
    parts = urlsplit(url)
    if form is None:
        claimed = dict(parse_qsl(parts.query)).get("bodySHA256", "")
        if not hmac.compare_digest(claimed.encode(), hashlib.sha256(body).hexdigest().encode()):
            return False
    default_port = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    variants = {url, urlunsplit(parts._replace(netloc=f"{host}:{parts.port or default_port}")),
                urlunsplit(parts._replace(netloc=host))}  # fmt: skip
    return any(hmac.compare_digest(signature(auth_token, variant, form).encode(), given.encode())
               for variant in variants)  # fmt: skip
