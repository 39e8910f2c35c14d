"""Named invariants of validation, checked with hypothesis:

1. `check` never raises and always returns a stable reason code, whatever the bytes.
2. `check` and the JSON Schemas (the reference) give the same verdict on every message:
   arbitrary bytes, arbitrary JSON, and events mutated one field at a time.
3. A valid verdict carries a normalised event whose time is the input's instant in UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.core.contract import AGENT_STATES, CHANNELS, EVENT_TYPES, REASONS, check
from tests.schema_reference import reference_valid

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

queue_names = st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z") | st.text(max_size=70)
ids = st.text(min_size=1, max_size=130) | st.text(alphabet="abc-_0123", min_size=1, max_size=12)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    # hypothesis wants naive bounds; the offset is attached below
    low, high = datetime(1800, 1, 2), datetime(2999, 12, 30)  # noqa: DTZ001
    moment = draw(st.datetimes(min_value=low, max_value=high))
    offset_minutes = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    zone = timezone(timedelta(minutes=offset_minutes))
    text = moment.replace(tzinfo=zone).isoformat()
    style = draw(st.sampled_from(["as is", "Z", "lower", "nanos", "no seconds", "space"]))
    if style == "Z" and offset_minutes == 0:
        text = text.replace("+00:00", "Z")
    elif style == "lower":
        text = text.replace("T", "t")
    elif style == "nanos" and "." not in text:
        text = text[:19] + ".123456789" + text[19:]
    elif style == "no seconds":
        text = text[:16] + text[19:]
    elif style == "space":
        text = text.replace("T", " ")
    return text


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(EVENT_TYPES))
    event: dict[str, Any] = {
        "event_id": draw(st.text(min_size=1, max_size=20)),
        "type": kind,
        "schema_version": draw(st.sampled_from([1, 1.0])),
        "occurred_at": draw(timestamps()),
        "contact_id": draw(st.text(min_size=1, max_size=20)),
    }
    if kind == "contact.offered":
        event |= {"channel": draw(st.sampled_from(CHANNELS)), "queue": draw(queue_names),
                  "customer_id": draw(st.text(max_size=10))}  # fmt: skip
        if draw(st.booleans()):
            event["reason"] = draw(st.text(max_size=66))
        if draw(st.booleans()):
            event["case_id"] = draw(st.text(max_size=130))
    elif kind == "contact.answered":
        event["agent_id"] = draw(st.text(max_size=10))
    elif kind == "contact.ended":
        event["resolved"] = draw(st.booleans())
        for name in ("talk_seconds", "hold_seconds", "acw_seconds"):
            if draw(st.booleans()):
                event[name] = draw(st.integers(-5, 10**6) | st.floats(-1, 1e9, allow_nan=False))
    elif kind == "survey.responded":
        for name, (low, high) in {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}.items():
            if draw(st.booleans()):
                event[name] = draw(st.integers(low - 1, high + 1) | st.sampled_from([float(low), low + 0.5]))
    else:
        event |= {"agent_id": draw(st.text(max_size=10)), "state": draw(st.sampled_from(AGENT_STATES)),
                  "queues": draw(st.lists(queue_names, max_size=3))}  # fmt: skip
        if draw(st.booleans()):
            del event["contact_id"]
    if draw(st.booleans()):
        event["channel"] = draw(st.sampled_from(CHANNELS))
    return event


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(valid_events())
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        fields = sorted(event)
        if action == "drop" and fields:
            del event[draw(st.sampled_from(fields))]
        elif action == "replace" and fields:
            event[draw(st.sampled_from(fields))] = draw(json_values | st.sampled_from(EVENT_TYPES) | timestamps())
        else:
            name = draw(st.sampled_from(["x_extra", "channel", "queue", "csat", "nps", "ces", "reason", "type"]))
            event[name] = draw(json_values)
    return event


def agree(message: bytes) -> None:
    verdict = check(message)
    assert verdict.reason is None or verdict.reason in REASONS
    assert verdict.valid == (verdict.reason is None)
    assert verdict.valid == reference_valid(message), f"fast path: {verdict.reason} {verdict.detail}"


@SETTINGS
@given(st.binary(max_size=300))
@example(b"\xef\xbb\xbf{}")  # a UTF-8 byte-order mark is not JSON text
def test_arbitrary_bytes(message: bytes) -> None:
    agree(message)


@SETTINGS
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    agree(json.dumps(value).encode())


@SETTINGS
@given(mutated_events())
def test_mutated_events(event: dict[str, Any]) -> None:
    agree(json.dumps(event, ensure_ascii=bool(len(event) % 2)).encode())


@SETTINGS
@given(valid_events())
def test_valid_time_is_the_same_instant_in_utc(event: dict[str, Any]) -> None:
    verdict = check(json.dumps(event).encode())
    if verdict.valid:
        assert verdict.event is not None
        moment = datetime.fromisoformat(event["occurred_at"].upper())
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        assert verdict.event.at == (moment - epoch) // timedelta(microseconds=1)
