"""Genesys Cloud conversation detail events as contract events (pipeline/sources/genesys.py,
docs/sources.md).

The fixture ``tests/fixtures/genesys/detail_events.jsonl`` is built from the detail event topics of
Genesys Cloud's notification service (``v2.detail.events.conversation.{id}.acd.start``, ``acd.end``,
``user.end``, ``acw``, ``attributes``, ``customer.start``, ``user.start``) with the fields of the
SDKs' models (``AcdEndDetailEventTopicAcdEndEvent``: ``eventTime``, ``conversationId``,
``mediaType``, ``messageType``, ``direction``, ``ani``, ``addressFrom``, ``queueId``,
``acdOutcome``, ``answeredUserId``; ``UserEndDetailEventTopicUserEndEvent``:
``interactingDurationMs``, ``heldDurationMs``, ``disconnectType``;
``AcwDetailEventTopicAfterCallWorkEvent``: ``wrapupCode``, ``wrapupDurationMs``), delivered as the
Amazon EventBridge integration wraps them (``detail-type``, ``detail.topicName``,
``detail.eventBody``) and once as the notification itself: a voice call answered, held, wrapped up
(its answer delivered twice); a web chat abandoned; a call that flowed out of its queue; a WhatsApp
message whose queue has no after-call work; an outbound call; three broken lines.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.core.contract import check
from pipeline.sources import Summary, convert
from pipeline.sources.genesys import DetailEvents
from pipeline.sources.genesys_out import detail_events
from tests.round_trip import contact_facts, finished_contacts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "genesys" / "detail_events.jsonl"
Q1, Q2 = "5b6a9d8e-1c2f-4a3b-9d8e-7f6a5b4c3d2e", "0e1d2c3b-4a59-4687-b7a6-958473625140"


def contact(number: int, queue: str) -> str:
    return f"genesys:a1b2c3d4-000{number}-4000-8000-00000000000{number}:{queue}"


def converted() -> tuple[list[dict], Summary]:  # type: ignore[type-arg]
    summary, events = Summary(), []
    with open(FIXTURE, "rb") as lines:
        for _, outcome in convert("genesys-cloud", lines, UTC):
            summary.add(outcome)
            events += outcome.events
    return events, summary


def found() -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    return {(e["contact_id"], e["type"]): e for e in converted()[0]}


def test_every_event_is_valid_and_the_summary_names_what_was_skipped_and_rejected() -> None:
    events, summary = converted()
    assert all(check(orjson.dumps(event)).event is not None for event in events)
    assert len(events) == 13 and len({e["event_id"] for e in events}) == 12  # the answer delivered twice
    assert summary.rejected == {"unreadable": 1, "bad_event": 2}
    assert summary.skipped == {
        "user.end (waits for its wrap-up)": 1,
        "customer.start": 1,
        "attributes": 1,
        "user.start": 1,
        "outbound": 1,
    }  # fmt: skip  (a transfer's user.end is an event)


def test_an_answered_call_s_wait_talk_hold_and_wrap_up_are_genesys_own() -> None:
    events = found()
    call = contact(1, Q1)
    offered = events[(call, "contact.offered")]
    assert (offered["occurred_at"], offered["queue"], offered["channel"]) == ("2026-11-23T09:00:00Z", Q1, "voice")
    assert (offered["customer_id"], offered["reason"], offered["case_id"]) == ("+81312345678", "billing", "CASE-42")
    answered = events[(call, "contact.answered")]
    assert (answered["occurred_at"], answered["agent_id"]) == ("2026-11-23T09:00:12.500Z", "u-alice")
    ended = events[(call, "contact.ended")]
    # user.end: interacting 200 s of which 15 s held; acw: 30 s of wrap-up, ending at the acw event
    assert (ended["talk_seconds"], ended["hold_seconds"], ended["acw_seconds"]) == (185.0, 15.0, 30.0)
    assert (ended["occurred_at"], ended["resolved"]) == ("2026-11-23T09:04:02.500Z", True)


def test_abandons_flow_outs_messages_and_a_queue_without_wrap_up() -> None:
    events = found()
    chat = contact(2, Q2)
    assert events[(chat, "contact.abandoned")]["occurred_at"] == "2026-11-23T09:01:42Z"
    assert events[(chat, "contact.offered")]["customer_id"] == "anonymous:a1b2c3d4-0002-4000-8000-000000000002"
    flowed = contact(3, Q1)
    assert (flowed, "contact.abandoned") not in events  # a flow-out is no abandon
    assert events[(flowed, "contact.ended")]["resolved"] is False and (flowed, "contact.answered") not in events
    assert events[(flowed, "contact.offered")]["customer_id"].startswith("anonymous:")  # tel:anonymous
    whatsapp = contact(4, Q2)
    assert events[(whatsapp, "contact.offered")]["channel"] == "social"
    ended = events[(whatsapp, "contact.ended")]  # no acw within 15 minutes of event time: ends at its user.end
    assert (ended["occurred_at"], ended["talk_seconds"], ended["acw_seconds"]) == ("2026-11-23T09:11:24Z", 600.0, 0.0)
    assert ended["resolved"] is False  # the agent transferred it
    assert events[(whatsapp, "contact.transferred")]["occurred_at"] == "2026-11-23T09:11:24Z"  # at its user.end
    assert (flowed, "contact.transferred") not in events  # a flow-out before an agent is no agent's transfer


def test_the_simulator_written_as_detail_events_converts_back_to_its_own_contacts() -> None:
    """``simulate --as genesys-cloud``, converted back: every finished contact of every channel
    Genesys has, with its queue, channel, customer, reason, case, offer, answer, abandonment and end
    at the same millisecond, its agent and disposition, talk, hold and wrap-up to the millisecond."""
    from pipeline.simulation import Simulation

    events = list(Simulation(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), seed=9).events(timedelta(hours=2)))
    kept = finished_contacts(events, {"voice", "chat", "email", "sms", "social"})

    def to_the_millisecond(ended: dict) -> tuple:  # type: ignore[type-arg]
        return tuple(round(ended.get(n, 0), 3) for n in ("talk_seconds", "hold_seconds", "acw_seconds"))

    source = DetailEvents()
    back = [event for line in detail_events(events) for event in source.line(line).events]
    assert all(check(orjson.dumps(event)).event is not None for event in back)
    simulated = contact_facts(events, kept, lambda e: e.get("contact_id"), to_the_millisecond)
    conversation = lambda e: str(e.get("contact_id", "")).removeprefix("genesys:").rsplit(":", 1)[0]  # noqa: E731
    from_genesys = contact_facts(back, kept, conversation, to_the_millisecond)
    assert len(simulated) > 300 and from_genesys == simulated


@pytest.mark.parametrize("broken", [
    b'{"detail-type": "v2.detail.events.conversation.x.acd.start", "detail": {"eventBody": {"eventTime": "soon"}}}',
    b'{"topicName": "v2.detail.events.conversation.x.acd.start", "eventBody": {"eventTime": 1, "mediaType": "VOICE"}}',
    b'{"topicName": "v2.detail.events.conversation.x.attributes", "eventBody": {"eventTime": 1, "attributes": [1]}}',
    b"[1, 2]",
])  # fmt: skip
def test_fields_of_the_wrong_shape_are_rejected_not_a_crash(broken: bytes) -> None:
    outcome = DetailEvents().line(broken)
    assert outcome.rejected and not outcome.events, outcome
