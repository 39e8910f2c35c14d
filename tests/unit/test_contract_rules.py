"""Every rule of EVENTS.md, with a valid and an invalid case, judged by the fast path
(pipeline.core.contract) and by the JSON Schemas, which must agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from pipeline.core.contract import check
from tests.schema_reference import reference_valid

OFFERED = {
    "event_id": "e1", "type": "contact.offered", "schema_version": 1, "occurred_at": "2026-11-23T09:00:00Z",
    "contact_id": "c1", "channel": "voice", "queue": "billing", "customer_id": "cust-42",
}  # fmt: skip
ANSWERED = {"event_id": "e2", "type": "contact.answered", "schema_version": 1,
            "occurred_at": "2026-11-23T09:00:12Z", "contact_id": "c1", "agent_id": "a7"}  # fmt: skip
ABANDONED = {"event_id": "e5", "type": "contact.abandoned", "schema_version": 1,
             "occurred_at": "2026-11-23T09:00:12Z", "contact_id": "c1"}  # fmt: skip
ENDED = {"event_id": "e3", "type": "contact.ended", "schema_version": 1, "occurred_at": "2026-11-23T09:06:40Z",
         "contact_id": "c1", "resolved": True}  # fmt: skip
SURVEY = {"event_id": "e4", "type": "survey.responded", "schema_version": 1,
          "occurred_at": "2026-11-23T09:10:00Z", "contact_id": "c1", "csat": 5}  # fmt: skip
AGENT = {"event_id": "e6", "type": "agent.state_changed", "schema_version": 1, "occurred_at": "2026-11-23T08:00:00Z",
         "agent_id": "a7", "state": "available", "queues": ["billing"]}  # fmt: skip
DROP = object()


def variant(base: dict[str, Any], **changes: Any) -> bytes:
    event = {k: v for k, v in base.items()}
    for key, value in changes.items():
        if value is DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return json.dumps(event).encode()


# (rule, message, expected reason or None for valid)
CASES: list[tuple[str, bytes, str | None]] = [
    # envelope: event_id, string of 1-128 characters
    ("event_id 128 chars", variant(OFFERED, event_id="x" * 128), None),
    ("event_id 129 chars", variant(OFFERED, event_id="x" * 129), "schema"),
    ("event_id empty", variant(OFFERED, event_id=""), "schema"),
    ("event_id missing", variant(OFFERED, event_id=DROP), "schema"),
    ("event_id a number", variant(OFFERED, event_id=7), "schema"),
    ("event_id of 128 non-ASCII characters", variant(OFFERED, event_id="é" * 128), None),
    # type: one of six
    ("unknown type", variant(OFFERED, type="contact.teleported"), "unknown_type"),
    ("type missing", variant(OFFERED, type=DROP), "unknown_type"),
    ("type not a string", variant(OFFERED, type=3), "unknown_type"),
    # schema_version: 1
    ("schema_version 1.0 is 1", variant(OFFERED, schema_version=1.0), None),
    ("schema_version 2", variant(OFFERED, schema_version=2), "unsupported_version"),
    ("schema_version missing", variant(OFFERED, schema_version=DROP), "schema"),
    ("schema_version a string", variant(OFFERED, schema_version="1"), "schema"),
    ("schema_version true", variant(OFFERED, schema_version=True), "schema"),
    # occurred_at: RFC 3339 with offset, fractions allowed
    ("occurred_at with +09:00", variant(OFFERED, occurred_at="2026-11-23T18:00:00+09:00"), None),
    ("occurred_at with nanoseconds", variant(OFFERED, occurred_at="2026-11-23T09:00:00.123456789Z"), None),
    (
        "occurred_at lower-case t and z (RFC 3339 allows)",
        variant(OFFERED, occurred_at="2026-11-23t09:00:00z"),
        None,
    ),
    ("occurred_at without offset", variant(OFFERED, occurred_at="2026-11-23T09:00:00"), "schema"),
    ("occurred_at date only", variant(OFFERED, occurred_at="2026-11-23"), "schema"),
    ("occurred_at February 30", variant(OFFERED, occurred_at="2026-02-30T09:00:00Z"), "schema"),
    ("occurred_at leap second", variant(OFFERED, occurred_at="2026-12-31T23:59:60Z"), "schema"),
    ("occurred_at space separator", variant(OFFERED, occurred_at="2026-11-23 09:00:00Z"), "schema"),
    ("occurred_at trailing newline", variant(OFFERED, occurred_at="2026-11-23T09:00:00Z\n"), "schema"),
    ("occurred_at epoch number", variant(OFFERED, occurred_at=1795392000), "schema"),
    # contact_id: required except on agent.state_changed
    ("contact_id missing on answered", variant(ANSWERED, contact_id=DROP), "schema"),
    ("contact_id 129 chars", variant(ANSWERED, contact_id="c" * 129), "schema"),
    ("contact_id absent on agent event", variant(AGENT), None),
    ("contact_id present on agent event", variant(AGENT, contact_id="c1"), None),
    ("contact_id empty on agent event", variant(AGENT, contact_id=""), "schema"),
    # channel: required on offered, optional elsewhere, one of six
    ("channel in_person", variant(OFFERED, channel="in_person"), None),
    ("channel missing on offered", variant(OFFERED, channel=DROP), "schema"),
    ("channel unknown", variant(OFFERED, channel="fax"), "schema"),
    ("channel on answered", variant(ANSWERED, channel="voice"), None),
    ("channel wrong on answered", variant(ANSWERED, channel="pigeon"), "schema"),
    ("channel null on answered", variant(ANSWERED, channel=None), "schema"),
    # queue: required on offered, 1-64 of [A-Za-z0-9_.-]
    ("queue with dots dashes underscores", variant(OFFERED, queue="claims.jp_tier-2"), None),
    ("queue 64 chars", variant(OFFERED, queue="q" * 64), None),
    ("queue 65 chars", variant(OFFERED, queue="q" * 65), "schema"),
    ("queue with a space", variant(OFFERED, queue="bil ling"), "schema"),
    ("queue with a trailing newline", variant(OFFERED, queue="billing\n"), "schema"),
    ("queue empty", variant(OFFERED, queue=""), "schema"),
    ("queue non-ASCII letter", variant(OFFERED, queue="café"), "schema"),
    ("queue missing on offered", variant(OFFERED, queue=DROP), "schema"),
    ("queue optional on ended", variant(ENDED, queue="billing"), None),
    # contact.offered: customer_id required, reason <= 64, case_id <= 128
    ("customer_id missing", variant(OFFERED, customer_id=DROP), "schema"),
    ("customer_id a number", variant(OFFERED, customer_id=42), "schema"),
    ("reason 64 chars", variant(OFFERED, reason="r" * 64), None),
    ("reason 65 chars", variant(OFFERED, reason="r" * 65), "schema"),
    ("case_id 128 chars", variant(OFFERED, case_id="k" * 128), None),
    ("case_id 129 chars", variant(OFFERED, case_id="k" * 129), "schema"),
    # contact.answered: agent_id required
    ("agent_id missing on answered", variant(ANSWERED, agent_id=DROP), "schema"),
    ("abandoned needs nothing more", variant(ABANDONED), None),
    # contact.ended: seconds >= 0 (default 0), resolved required boolean
    ("all seconds given", variant(ENDED, talk_seconds=340, hold_seconds=20.5, acw_seconds=0), None),
    ("negative talk", variant(ENDED, talk_seconds=-1), "schema"),
    ("talk as a string", variant(ENDED, talk_seconds="340"), "schema"),
    ("resolved missing", variant(ENDED, resolved=DROP), "schema"),
    ("resolved as 1", variant(ENDED, resolved=1), "schema"),
    (
        "seconds beyond a double",
        b'{"event_id":"e3","type":"contact.ended","schema_version":1,'
        b'"occurred_at":"2026-11-23T09:06:40Z","contact_id":"c1","resolved":true,"talk_seconds":1e400}',
        "schema",
    ),
    # survey.responded: csat 1-5, nps 0-10, ces 1-7, integers, at least one
    ("nps 0 and ces 7", variant(SURVEY, csat=DROP, nps=0, ces=7), None),
    ("csat 4.0 is an integer", variant(SURVEY, csat=4.0), None),
    ("csat 4.5", variant(SURVEY, csat=4.5), "schema"),
    ("csat 0", variant(SURVEY, csat=0), "schema"),
    ("csat 6", variant(SURVEY, csat=6), "schema"),
    ("nps 11", variant(SURVEY, nps=11), "schema"),
    ("ces 0", variant(SURVEY, ces=0), "schema"),
    ("csat true", variant(SURVEY, csat=True), "schema"),
    ("no score at all", variant(SURVEY, csat=DROP), "schema"),
    ("csat null", variant(SURVEY, csat=None, nps=8), "schema"),
    # agent.state_changed: agent_id, state, queues required (may be empty)
    ("queues empty", variant(AGENT, queues=[]), None),
    ("queues missing", variant(AGENT, queues=DROP), "schema"),
    ("queues with a bad name", variant(AGENT, queues=["billing", "bad name"]), "schema"),
    ("state unknown", variant(AGENT, state="lunch"), "schema"),
    ("agent_id missing", variant(AGENT, agent_id=DROP), "schema"),
    # unknown extra fields are allowed, whatever they hold
    ("extra fields", variant(OFFERED, x_vendor={"nested": [1, 2.5, None, "é"]}, big=10**30), None),
    (
        "extra field beyond a double",
        b'{"event_id":"e2","type":"contact.answered","schema_version":1,'
        b'"occurred_at":"2026-11-23T09:00:12Z","contact_id":"c1","agent_id":"a7","x":1e400}',
        None,
    ),
    # a repeated key: the last one wins
    (
        "repeated key, last valid",
        b'{"event_id":"e2","type":"contact.answered","schema_version":1,'
        b'"occurred_at":"2026-11-23T09:00:12Z","contact_id":7,"contact_id":"c1","agent_id":"a7"}',
        None,
    ),
    (
        "repeated type, last wins",
        b'{"event_id":"e2","type":"contact.offered","type":"contact.answered",'
        b'"schema_version":1,"occurred_at":"2026-11-23T09:00:12Z","contact_id":"c1","agent_id":"a7"}',
        None,
    ),
    (
        "repeated key, last invalid",
        b'{"event_id":"e2","type":"contact.answered","schema_version":1,'
        b'"occurred_at":"2026-11-23T09:00:12Z","contact_id":"c1","contact_id":"","agent_id":"a7"}',
        "schema",
    ),
    # not JSON, not an object, not UTF-8, too large
    ("not JSON", b"{not json", "invalid_json"),
    ("NaN", b'{"event_id":"e1","x":NaN}', "invalid_json"),
    ("Infinity", b'{"event_id":"e1","x":Infinity}', "invalid_json"),
    ("not UTF-8", variant(OFFERED)[:-1] + b',"x":"\xff\xfe"}', "invalid_json"),
    ("lone surrogate escape", variant(OFFERED)[:-1] + b',"x":"\\ud800"}', "invalid_json"),
    ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, "too_large"),
    (
        "nested 5000 deep in an extra field",
        variant(OFFERED)[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        "invalid_json",
    ),
    ("an array", b"[1, 2]", "schema"),
    ("a string", b'"contact.offered"', "schema"),
    ("empty", b"", "invalid_json"),
    ("64 KiB exactly", variant(OFFERED, pad="p" * (65536 - len(variant(OFFERED, pad="")))), None),
    ("64 KiB and a byte", variant(OFFERED, pad="p" * (65537 - len(variant(OFFERED, pad="")))), "too_large"),
]


@pytest.mark.parametrize(("rule", "message", "expected"), CASES, ids=[case[0] for case in CASES])
def test_rule(rule: str, message: bytes, expected: str | None) -> None:
    verdict = check(message)
    assert verdict.reason == expected, verdict.detail
    assert verdict.valid == (expected is None)
    assert reference_valid(message) == (expected is None), "the JSON Schemas disagree"
    if expected is not None:
        assert verdict.detail  # a human-readable reason, always


def test_normalisation_converts_to_utc_and_fills_defaults() -> None:
    offered = check(variant(OFFERED, occurred_at="2026-11-23T18:00:00.1234567+09:00")).event
    assert offered is not None
    nine_utc = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)  # digits past the 6th are dropped
    assert offered.at == (nine_utc - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert offered.reason == "unspecified" and offered.case_id is None
    ended = check(variant(ENDED)).event
    assert ended is not None and (ended.talk_seconds, ended.hold_seconds, ended.acw_seconds) == (0, 0, 0)
    survey = check(variant(SURVEY, csat=4.0, nps=10)).event
    assert survey is not None and survey.csat == 4 and isinstance(survey.csat, int) and survey.ces is None
    agent = check(variant(AGENT)).event
    assert agent is not None and agent.queues == ("billing",) and agent.contact_id is None


def test_the_events_md_example_is_valid_line_by_line() -> None:
    example = [
        OFFERED | {"reason": "invoice"},
        ANSWERED,
        ENDED | {"talk_seconds": 340, "hold_seconds": 20, "acw_seconds": 28},
        SURVEY | {"nps": 9},
    ]
    for event in example:
        assert check(orjson.dumps(event)).valid
