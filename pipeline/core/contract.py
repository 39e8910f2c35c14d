"""The event contract (EVENTS.md): validation and normalisation of one message.

``check(raw)`` never raises. It returns a :class:`Verdict`: either a normalised :class:`Event`
(UTC microseconds, defaults filled in) or a stable reason code with a human-readable detail.
The JSON Schemas in ``schemas/`` are the reference; ``tests/unit/test_contract_equivalence.py``
proves this module and the schemas agree on every case.

How a message is read, exactly:
- over 64 KiB (65,536 bytes) is ``too_large``, before anything else;
- it must be UTF-8 and RFC 8259 JSON: no ``NaN``/``Infinity`` literals, no lone surrogate
  escapes; otherwise ``invalid_json``. When a key repeats, the last occurrence wins (as in
  most JSON parsers);
- then the schema: ``unknown_type`` (``type`` missing from the known six, or not a string),
  ``unsupported_version`` (``schema_version`` other than 1), ``schema`` (everything else).

Speed: the fast path decodes straight into typed structs (msgspec) and decides every valid
message. msgspec validates every occurrence of a repeated key, so a rejection is decided
again by the slow path (stdlib JSON, last key wins, then the same types): invalid messages
are rare and their cost does not matter.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

MAX_MESSAGE_BYTES: Final = 64 * 1024
SCHEMA_VERSION: Final = 1
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND: Final = timedelta(microseconds=1)
LARGEST_DOUBLE: Final = 1.7976931348623157e308

REASONS: Final = {
    "too_large": "the message is over 64 KiB",
    "invalid_json": "not UTF-8 JSON (RFC 8259)",
    "unknown_type": "`type` is not one of the six event types",
    "unsupported_version": "`schema_version` is not 1",
    "schema": "a field is missing, of the wrong type or out of range",
}

# Patterns are written to mean the same in Python's `re` and in ECMA-262 (JSON Schema):
# `(?![\s\S])` is "end of input" in both, where `$` would also match before a final newline
# in Python.
QUEUE_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}(?![\s\S])"
TIMESTAMP_PATTERN: Final = (
    r"^(1[89]|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])(?![\s\S])"
)

EventId = Annotated[str, Meta(min_length=1, max_length=128)]
ContactId = Annotated[str, Meta(min_length=1, max_length=128)]
Queue = Annotated[str, Meta(pattern=QUEUE_PATTERN)]
Timestamp = Annotated[str, Meta(pattern=TIMESTAMP_PATTERN)]
Channel = Literal["voice", "chat", "email", "sms", "social", "in_person"]
AgentState = Literal["available", "on_contact", "after_contact_work", "away", "offline"]
Number = int | float
CHANNELS: Final = ("voice", "chat", "email", "sms", "social", "in_person")
AGENT_STATES: Final = ("available", "on_contact", "after_contact_work", "away", "offline")


class _Envelope(Struct, tag_field="type", kw_only=True):
    event_id: EventId
    schema_version: Number
    occurred_at: Timestamp
    channel: Channel | UnsetType = UNSET
    queue: Queue | UnsetType = UNSET


class ContactOffered(_Envelope, tag="contact.offered"):
    contact_id: ContactId
    channel: Channel  # required here
    queue: Queue  # required here
    customer_id: str
    reason: Annotated[str, Meta(max_length=64)] | UnsetType = UNSET
    case_id: Annotated[str, Meta(max_length=128)] | UnsetType = UNSET


class ContactAnswered(_Envelope, tag="contact.answered"):
    contact_id: ContactId
    agent_id: str


class ContactAbandoned(_Envelope, tag="contact.abandoned"):
    contact_id: ContactId


class ContactEnded(_Envelope, tag="contact.ended"):
    contact_id: ContactId
    resolved: bool
    talk_seconds: Number | UnsetType = UNSET
    hold_seconds: Number | UnsetType = UNSET
    acw_seconds: Number | UnsetType = UNSET


class SurveyResponded(_Envelope, tag="survey.responded"):
    contact_id: ContactId
    csat: Number | UnsetType = UNSET
    nps: Number | UnsetType = UNSET
    ces: Number | UnsetType = UNSET


class AgentStateChanged(_Envelope, tag="agent.state_changed"):
    agent_id: str
    state: AgentState
    queues: list[Queue]
    contact_id: ContactId | UnsetType = UNSET


Wire = ContactOffered | ContactAnswered | ContactAbandoned | ContactEnded | SurveyResponded | AgentStateChanged
EVENT_TYPES: Final = tuple(cls.__struct_config__.tag for cls in Wire.__args__)  # type: ignore[attr-defined]


class Event(Struct, frozen=True, gc=False):
    """One valid event, normalised: UTC time in microseconds since the epoch, defaults applied.

    Fields that a type does not carry are ``None``.
    """

    event_id: str
    type: str
    at: int  # occurred_at, UTC, microseconds since 1970-01-01
    contact_id: str | None = None
    channel: str | None = None
    queue: str | None = None
    customer_id: str | None = None
    reason: str | None = None
    case_id: str | None = None
    agent_id: str | None = None
    talk_seconds: float | None = None
    hold_seconds: float | None = None
    acw_seconds: float | None = None
    resolved: bool | None = None
    csat: int | None = None
    nps: int | None = None
    ces: int | None = None
    state: str | None = None
    queues: tuple[str, ...] | None = None


class Verdict(Struct, frozen=True, gc=False):
    event: Event | None = None
    reason: str | None = None  # a key of REASONS when invalid
    detail: str = ""

    @property
    def valid(self) -> bool:
        return self.event is not None


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_decoder: Final = msgspec.json.Decoder(Wire)


def check(raw: bytes) -> Verdict:
    """Validate and normalise one message. Never raises."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return Verdict(None, "too_large", f"{len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        raw.decode("utf-8")  # msgspec does not look inside fields it skips
        return Verdict(_normalise(_decoder.decode(raw)))
    except Exception:  # noqa: BLE001 - any failure is re-decided by the slow path below
        pass
    try:
        return Verdict(_normalise(_slow_decode(raw)))
    except _Invalid as problem:
        return Verdict(None, problem.reason, problem.detail[:500])
    except Exception as problem:  # noqa: BLE001 - never raise, whatever the input
        return Verdict(None, "schema", f"unreadable event: {type(problem).__name__}: {problem}"[:500])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """RFC 8259 JSON from UTF-8 bytes, last key wins; raises ``_Invalid('invalid_json')``."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # lone surrogate escapes fail here
        return value
    except UnicodeError as problem:
        raise _Invalid("invalid_json", f"not UTF-8: {problem}") from None
    except RecursionError:
        raise _Invalid("invalid_json", "nested too deeply") from None
    except ValueError as problem:
        raise _Invalid("invalid_json", str(problem)) from None


def _slow_decode(raw: bytes) -> Wire:
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise _Invalid("schema", f"an event is a JSON object, not {type(value).__name__}")
    event_type = value.get("type")
    if event_type not in EVENT_TYPES:
        shown = repr(event_type)[:80] if "type" in value else "missing"
        raise _Invalid("unknown_type", f"type: {shown}; expected one of {', '.join(EVENT_TYPES)}")
    version = value.get("schema_version")
    if isinstance(version, int | float) and not isinstance(version, bool) and version != SCHEMA_VERSION:
        raise _Invalid("unsupported_version", f"schema_version: {version!r}; this worker reads version 1")
    try:
        return msgspec.convert(value, Wire)  # type: ignore[arg-type]
    except msgspec.ValidationError as problem:
        raise _Invalid("schema", str(problem)) from None


def _is_version_one(version: Any) -> bool:
    return not isinstance(version, bool) and isinstance(version, int | float) and version == SCHEMA_VERSION


def _integer(value: Any, name: str, low: int, high: int) -> int | None:
    if value is UNSET:
        return None
    if isinstance(value, float):
        if not value.is_integer():
            raise _Invalid("schema", f"{name}: {value!r} is not a whole number")
        value = int(value)
    if not low <= value <= high:
        raise _Invalid("schema", f"{name}: {value} is outside {low}..{high}")
    return int(value)


def _seconds(value: Any, name: str) -> float:
    if value is UNSET:
        return 0.0
    if not (0 <= value <= LARGEST_DOUBLE) or (isinstance(value, float) and not math.isfinite(value)):
        raise _Invalid("schema", f"{name}: {value!r} must be a finite number >= 0")
    return float(value)


def utc_microseconds(timestamp: str) -> int:
    """RFC 3339 text (already matched by TIMESTAMP_PATTERN) to UTC microseconds since the epoch."""
    try:
        moment = datetime.fromisoformat(timestamp.upper())
    except ValueError as problem:  # e.g. February 30th
        raise _Invalid("schema", f"occurred_at: {timestamp!r}: {problem}") from None
    return (moment - EPOCH) // MICROSECOND


def _normalise(wire: Wire) -> Event:
    if not _is_version_one(wire.schema_version):
        raise _Invalid("unsupported_version", f"schema_version: {wire.schema_version!r}; this worker reads 1")
    at = utc_microseconds(wire.occurred_at)
    channel = None if wire.channel is UNSET else wire.channel
    queue = None if wire.queue is UNSET else wire.queue
    if isinstance(wire, ContactOffered):
        return Event(
            wire.event_id, "contact.offered", at, wire.contact_id, channel, queue,
            customer_id=wire.customer_id,
            reason="unspecified" if wire.reason is UNSET else wire.reason,
            case_id=None if wire.case_id is UNSET else wire.case_id,
        )  # fmt: skip
    if isinstance(wire, ContactAnswered):
        return Event(wire.event_id, "contact.answered", at, wire.contact_id, channel, queue, agent_id=wire.agent_id)
    if isinstance(wire, ContactAbandoned):
        return Event(wire.event_id, "contact.abandoned", at, wire.contact_id, channel, queue)
    if isinstance(wire, ContactEnded):
        return Event(
            wire.event_id, "contact.ended", at, wire.contact_id, channel, queue,
            talk_seconds=_seconds(wire.talk_seconds, "talk_seconds"),
            hold_seconds=_seconds(wire.hold_seconds, "hold_seconds"),
            acw_seconds=_seconds(wire.acw_seconds, "acw_seconds"),
            resolved=wire.resolved,
        )  # fmt: skip
    if isinstance(wire, SurveyResponded):
        if wire.csat is UNSET and wire.nps is UNSET and wire.ces is UNSET:
            raise _Invalid("schema", "a survey needs at least one of csat, nps, ces")
        return Event(
            wire.event_id, "survey.responded", at, wire.contact_id, channel, queue,
            csat=_integer(wire.csat, "csat", 1, 5),
            nps=_integer(wire.nps, "nps", 0, 10),
            ces=_integer(wire.ces, "ces", 1, 7),
        )  # fmt: skip
    return Event(
        wire.event_id, "agent.state_changed", at, None if wire.contact_id is UNSET else wire.contact_id,
        channel, queue, agent_id=wire.agent_id, state=wire.state, queues=tuple(wire.queues),
    )  # fmt: skip
