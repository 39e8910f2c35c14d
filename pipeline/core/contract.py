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
import re
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
# Queue names and timestamps are checked after decoding (see _queue, utc_microseconds): a
# regex per message inside the decoder costs more than the whole rest of the decoding.
Queue = str
Timestamp = str
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


class ContactTransferred(_Envelope, tag="contact.transferred"):
    """An agent transferred the contact (issue 22): to a queue, to an agent, or elsewhere (neither)."""

    contact_id: ContactId
    to_queue: Queue | UnsetType = UNSET
    to_agent: str | UnsetType = UNSET


class AgentStateChanged(_Envelope, tag="agent.state_changed"):
    agent_id: str
    state: AgentState
    queues: list[Queue]
    contact_id: ContactId | UnsetType = UNSET
    reason: Annotated[str, Meta(max_length=64)] | UnsetType = UNSET  # break, lunch, training... (issue 22)


Wire = (ContactOffered | ContactAnswered | ContactAbandoned | ContactEnded | SurveyResponded | AgentStateChanged
        | ContactTransferred)  # fmt: skip
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
    to_queue: str | None = None  # contact.transferred
    to_agent: str | None = None


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
_QUEUE: Final = re.compile(QUEUE_PATTERN)
_known_queues: set[str] = set()  # names already found valid: a few dozen in a real center
_MAX_KNOWN_QUEUES: Final = 100_000


def check(raw: bytes) -> Verdict:
    """Validate and normalise one message. Never raises."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return Verdict(None, "too_large", f"{len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        if not raw.isascii():
            raw.decode("utf-8")  # msgspec does not look inside the fields it skips
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
    """RFC 3339 text (as TIMESTAMP_PATTERN describes) to UTC microseconds since the epoch.

    A timestamp is read in three parts, each validated once and then remembered: the minute
    (``2026-11-23T09:00``, shared by every event of that minute), the seconds (``:12``) and the
    tail (fraction and offset, ``.250+09:00``). Digits past the sixth of a fraction are dropped.
    """
    minute = _minutes.get(timestamp[:16])
    if minute is None:
        minute = _learn_minute(timestamp)
    second = _SECONDS.get(timestamp[16:19])
    if second is None:
        raise _Invalid("schema", f"occurred_at: {timestamp[:60]!r}: seconds must be :00 to :59")
    tail = _tails.get(timestamp[19:])
    if tail is None:
        tail = _learn_tail(timestamp)
    return minute + second + tail


_MINUTE_SHAPE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}")
_TAIL_SHAPE: Final = re.compile(r"(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))")
_SECONDS: Final = {f":{second:02d}": second * 1_000_000 for second in range(60)}
_minutes: dict[str, int] = {}
_tails: dict[str, int] = {}
_MAX_REMEMBERED: Final = 200_000


def _learn_minute(timestamp: str) -> int:
    prefix = timestamp[:16]
    if _MINUTE_SHAPE.fullmatch(prefix) is None:
        raise _Invalid("schema", f"occurred_at: {timestamp[:60]!r} is not RFC 3339 with an offset")
    try:
        moment = datetime.fromisoformat(f"{prefix[:10]}T{prefix[11:]}:00+00:00")
    except ValueError as problem:  # e.g. February 30th, 24:00
        raise _Invalid("schema", f"occurred_at: {timestamp!r}: {problem}") from None
    if not 1800 <= moment.year <= 2999:
        raise _Invalid("schema", f"occurred_at: {timestamp!r}: the year must be 1800-2999")
    micros = (moment - EPOCH) // MICROSECOND
    if len(_minutes) >= _MAX_REMEMBERED:
        _minutes.clear()
    _minutes[prefix] = micros
    return micros


def _learn_tail(timestamp: str) -> int:
    tail = timestamp[19:]
    shape = _TAIL_SHAPE.fullmatch(tail)
    if shape is None:
        raise _Invalid("schema", f"occurred_at: {timestamp[:60]!r} needs an offset (Z or +09:00) after the seconds")
    fraction, _, sign, hours, minutes = shape.groups()
    micros = int((fraction or "")[:6].ljust(6, "0"))
    if sign:
        offset = (int(hours) * 60 + int(minutes)) * 60_000_000
        micros += -offset if sign == "+" else offset
    if len(_tails) < _MAX_REMEMBERED:
        _tails[tail] = micros
    return micros


def _queue(name: str, field: str = "queue") -> str:
    if name not in _known_queues:
        if _QUEUE.match(name) is None:
            raise _Invalid("schema", f"{field}: {name[:80]!r} is not 1-64 characters of A-Z a-z 0-9 _ . -")
        if len(_known_queues) < _MAX_KNOWN_QUEUES:
            _known_queues.add(name)
    return name


def _offered(w: ContactOffered, at: int, channel: str | None, queue: str | None) -> Event:
    reason = "unspecified" if w.reason is UNSET else w.reason
    case_id = None if w.case_id is UNSET else w.case_id
    return Event(w.event_id, "contact.offered", at, w.contact_id, channel, queue, w.customer_id, reason, case_id)


def _answered(w: ContactAnswered, at: int, channel: str | None, queue: str | None) -> Event:
    return Event(w.event_id, "contact.answered", at, w.contact_id, channel, queue, None, None, None, w.agent_id)


def _abandoned(w: ContactAbandoned, at: int, channel: str | None, queue: str | None) -> Event:
    return Event(w.event_id, "contact.abandoned", at, w.contact_id, channel, queue)


def _ended(w: ContactEnded, at: int, channel: str | None, queue: str | None) -> Event:
    return Event(
        w.event_id, "contact.ended", at, w.contact_id, channel, queue, None, None, None, None,
        _seconds(w.talk_seconds, "talk_seconds"), _seconds(w.hold_seconds, "hold_seconds"),
        _seconds(w.acw_seconds, "acw_seconds"), w.resolved,
    )  # fmt: skip


def _surveyed(w: SurveyResponded, at: int, channel: str | None, queue: str | None) -> Event:
    if w.csat is UNSET and w.nps is UNSET and w.ces is UNSET:
        raise _Invalid("schema", "a survey needs at least one of csat, nps, ces")
    return Event(
        w.event_id, "survey.responded", at, w.contact_id, channel, queue, None, None, None, None, None, None, None,
        None, _integer(w.csat, "csat", 1, 5), _integer(w.nps, "nps", 0, 10), _integer(w.ces, "ces", 1, 7),
    )  # fmt: skip


def _transferred(w: ContactTransferred, at: int, channel: str | None, queue: str | None) -> Event:
    to_queue = None if w.to_queue is UNSET else _queue(w.to_queue, "to_queue")
    to_agent = None if w.to_agent is UNSET else w.to_agent
    return Event(w.event_id, "contact.transferred", at, w.contact_id, channel, queue, to_queue=to_queue,
                 to_agent=to_agent)  # fmt: skip


def _agent(w: AgentStateChanged, at: int, channel: str | None, queue: str | None) -> Event:
    if not _known_queues.issuperset(w.queues):
        for name in w.queues:
            _queue(name, "queues[]")
    queues = tuple(w.queues)
    contact_id = None if w.contact_id is UNSET else w.contact_id
    reason = None if w.reason is UNSET else w.reason
    return Event(
        w.event_id, "agent.state_changed", at, contact_id, channel, queue, None, reason, None, w.agent_id,
        None, None, None, None, None, None, None, w.state, queues,
    )  # fmt: skip


_NORMALISE: Final[dict[type, Any]] = {
    ContactOffered: _offered,
    ContactAnswered: _answered,
    ContactAbandoned: _abandoned,
    ContactEnded: _ended,
    SurveyResponded: _surveyed,
    AgentStateChanged: _agent,
    ContactTransferred: _transferred,
}


def _normalise(wire: Wire) -> Event:
    version = wire.schema_version
    if version != SCHEMA_VERSION:
        raise _Invalid("unsupported_version", f"schema_version: {version!r}; this worker reads version 1")
    at = utc_microseconds(wire.occurred_at)
    channel = None if wire.channel is UNSET else wire.channel
    queue = None if wire.queue is UNSET else _queue(wire.queue)
    return _NORMALISE[type(wire)](wire, at, channel, queue)  # type: ignore[no-any-return]
