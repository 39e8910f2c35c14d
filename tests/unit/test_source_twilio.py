"""Twilio TaskRouter events as contract events (pipeline/sources/twilio.py, docs/sources.md).

The fixture ``tests/fixtures/twilio/taskrouter_events.txt`` is built from TaskRouter's "Events
reference" (the callback parameters ``EventType``, ``Sid``, ``Timestamp``, ``TimestampMs``,
``TaskSid``, ``TaskQueueName``, ``TaskChannelUniqueName``, ``TaskAttributes``,
``TaskCanceledReason``, ``TaskCompletedReason``, ``WorkerName``, ``WorkerActivityName``,
``WorkerAttributes``; form-encoded as posted) and Event Streams' TaskRouter event types
(CloudEvents ``com.twilio.taskrouter.*`` with the snake_case ``data.payload``, delivered as an
array by the webhook sink): a voice call answered, wrapped up and completed, with one callback
delivered twice; a hang-up in a queue whose name the contract does not take, from a withheld
number; a workflow timeout; an outbound task; a worker going on break; a WhatsApp conversation
through Event Streams; two broken lines.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.contract import check
from pipeline.sources import Summary, convert
from pipeline.sources.twilio import TaskRouter, signature, signed
from pipeline.sources.twilio_out import callbacks
from tests.round_trip import contact_facts, finished_contacts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "twilio" / "taskrouter_events.txt"
REPO = Path(__file__).resolve().parents[2]
CALL, HANGUP, TIMEOUT, WHATSAPP = ("twilio:WT" + letter * 32 for letter in "abce")


def converted() -> tuple[list[dict], Summary]:  # type: ignore[type-arg]
    summary, events = Summary(), []
    with open(FIXTURE, "rb") as lines:
        for _, outcome in convert("twilio-taskrouter", lines, UTC):
            summary.add(outcome)
            events += outcome.events
    return events, summary


def by_contact() -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    return {(e["contact_id"], e["type"]): e for e in converted()[0] if "contact_id" in e}


def test_every_event_is_valid_and_the_summary_names_what_was_skipped_and_rejected() -> None:
    events, summary = converted()
    for event in events:
        verdict = check(orjson.dumps(event))
        assert verdict.event is not None, (event, verdict.reason, verdict.detail)
    assert len({e["event_id"] for e in events}) == len(events) == 16
    assert (summary.lines, summary.converted) == (19, 12)
    assert summary.skipped == {"task.created": 1, "reservation.created": 1, "reservation.accepted again": 1,
                               "task.wrapup": 1, "outbound": 1}  # fmt: skip
    assert summary.rejected == {"unreadable": 1, "bad_event": 1}


def test_an_answered_call_s_wait_talk_and_wrap_up_come_from_its_events_times() -> None:
    found = by_contact()
    assert found[(CALL, "contact.offered")]["occurred_at"] == "2026-11-23T09:00:00Z"
    assert found[(CALL, "contact.offered")]["customer_id"] == "+815012345678"
    assert found[(CALL, "contact.offered")]["reason"] == "billing"  # a task attribute
    assert found[(CALL, "contact.answered")]["occurred_at"] == "2026-11-23T09:00:15.250Z"  # reservation.accepted
    ended = found[(CALL, "contact.ended")]
    # talk: accepted 09:00:15.250 -> reservation.wrapup 09:03:15.250; wrap-up -> reservation.completed 09:03:45.250
    assert (ended["talk_seconds"], ended["acw_seconds"], ended["resolved"]) == (180.0, 30.0, True)
    assert ended["occurred_at"] == "2026-11-23T09:03:45.250Z"


def test_hang_ups_abandon_timeouts_end_unanswered_and_odd_names_and_withheld_numbers_are_kept_apart() -> None:
    found = by_contact()
    assert found[(HANGUP, "contact.abandoned")]["occurred_at"] == "2026-11-23T09:01:42Z"
    offered = found[(HANGUP, "contact.offered")]
    assert offered["queue"].startswith("Support_Desk-") and offered["twilio_queue"] == "Support Desk"
    assert offered["customer_id"] == f"anonymous:{HANGUP.removeprefix('twilio:')}"
    assert (TIMEOUT, "contact.abandoned") not in found
    assert found[(TIMEOUT, "contact.ended")]["resolved"] is False and (TIMEOUT, "contact.answered") not in found
    chat = found[(WHATSAPP, "contact.offered")]
    assert (chat["channel"], chat["customer_id"], chat["queue"]) == ("social", "whatsapp:+821012345678", "chat_sales")
    assert found[(WHATSAPP, "contact.ended")]["talk_seconds"] == 600.0


def test_agents_follow_their_reservations_and_activities() -> None:
    events = converted()[0]
    states = [(e["agent_id"], e["state"], e["occurred_at"]) for e in events if e["type"] == "agent.state_changed"]
    assert states == [
        ("alice", "on_contact", "2026-11-23T09:00:15.250Z"),
        ("alice", "after_contact_work", "2026-11-23T09:03:15.250Z"),
        ("alice", "available", "2026-11-23T09:03:45.250Z"),
        ("alice", "away", "2026-11-23T09:06:40Z"),  # the activity "Break"
        ("bob", "on_contact", "2026-11-23T09:10:04.500Z"),
        ("bob", "available", "2026-11-23T09:20:04.500Z"),
    ]
    alice = next(e for e in converted()[0] if e.get("agent_id") == "alice" and e["type"] == "agent.state_changed")
    assert alice["queues"] == ["support"]  # WorkerAttributes.queues


def simulated(hours: float = 2) -> list[dict]:  # type: ignore[type-arg]
    from pipeline.simulation import Simulation

    return list(Simulation(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), seed=7).events(timedelta(hours=hours)))


def test_the_simulator_written_as_callbacks_converts_back_to_its_own_contacts() -> None:
    """``simulate --as twilio-taskrouter``, converted back: every finished contact of every channel
    TaskRouter has, with its queue, channel, customer, reason and case, offer, answer, abandonment
    and end at the same millisecond, its agent and disposition; after-contact work as it was, and
    talk as the time from the answer to the wrap-up (TaskRouter records no hold: it is talk there)."""
    events = simulated()
    kept = finished_contacts(events, {"voice", "chat", "email", "sms", "social"})
    assert len(kept) > 300

    def talk_and_acw(ended: dict) -> tuple:  # type: ignore[type-arg]
        return ended.get("talk_seconds", 0) + ended.get("hold_seconds", 0), ended.get("acw_seconds", 0)

    source = TaskRouter()
    back = [event for line in callbacks(events) for event in source.line(line).events]
    assert all(check(orjson.dumps(event)).event is not None for event in back)
    simulated_contacts = contact_facts(events, kept, lambda e: e.get("contact_id"), talk_and_acw)
    converted = contact_facts(back, kept, lambda e: str(e.get("contact_id", "")).removeprefix("twilio:"), talk_and_acw)
    assert converted.keys() == simulated_contacts.keys()
    for contact, facts in simulated_contacts.items():
        other = converted[contact]
        assert {k: v for k, v in other.items() if k != "work"} == {k: v for k, v in facts.items() if k != "work"}
        if "work" in facts:  # talk is answer -> wrap-up, after-contact work as it was (to the ms)
            elapsed = facts["contact.ended"] - facts["contact.answered"]  # type: ignore[operator]
            acw = facts["work"][1]  # type: ignore[index]
            assert other["work"] == pytest.approx((elapsed - acw, acw), abs=0.002), contact
    assert {e["channel"] for e in back if e["type"] == "contact.offered"} == {"voice", "chat", "email", "sms", "social"}


LINES = list(callbacks(simulated(1)))


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(LINES)))
def test_a_converter_restored_from_a_snapshot_goes_on_exactly(cut: int) -> None:
    """A restart (the webhook's journal): the state saved after any line, restored into a new
    converter, gives the same events from there on as one converter that never stopped."""
    whole = TaskRouter()
    expected = [outcome.events for outcome in map(whole.line, LINES)]
    first = TaskRouter()
    for line in LINES[:cut]:
        first.line(line)
    second = TaskRouter()
    second.restore(orjson.loads(orjson.dumps(first.snapshot())))
    assert [outcome.events for outcome in map(second.line, LINES[cut:])] == expected[cut:]


def test_a_callback_delivered_again_gives_events_with_the_same_ids() -> None:
    source = TaskRouter()
    ids = [e["event_id"] for line in LINES[:200] for e in source.line(line).events]
    again = TaskRouter()
    ids_again = [e["event_id"] for line in LINES[:200] for repeat in (line, line) for e in again.line(repeat).events]
    assert set(ids_again) == set(ids)


def test_signatures_are_twilio_s_own() -> None:
    """The examples of Twilio's "Webhooks security" documentation (auth token 12345)."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    form = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
            ("From", "+12349013030"), ("To", "+18005551212")]  # fmt: skip
    assert signature("12345", url, form) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signed("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, b"", form)
    assert signed("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "https://mycompany.com:443/myapp.php?foo=1&bar=2", b"", form)
    assert not signed("54321", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, b"", form)
    assert not signed("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, b"", form[:-1])
    assert not signed("12345", "", url, b"", form)
    body = b'{"property": "value", "boolean": true}'
    json_url = f"{url}&bodySHA256={hashlib.sha256(body).hexdigest()}"
    assert json_url.endswith("0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620")
    assert signed("12345", "a9nBmqA0ju/hNViExpshrM61xv4=", json_url, body, None)
    assert not signed("12345", "a9nBmqA0ju/hNViExpshrM61xv4=", json_url, body + b" ", None)  # another body


@pytest.mark.parametrize("broken", [
    b"EventType=task-queue.entered&TaskSid=WT1&TaskQueueName=q&Timestamp=soon&TaskChannelUniqueName=voice",
    b"EventType=task-queue.entered&TaskSid=WT1&TaskQueueName=q&Timestamp=1&TaskAttributes=%5B1%5D",
    b"EventType=task-queue.entered&Timestamp=1&TaskQueueName=q",
    b"[1, 2]",
    b'{"EventType": "task.completed", "TaskSid": "WT1"}',
])  # fmt: skip
def test_fields_of_the_wrong_shape_are_rejected_not_a_crash(broken: bytes) -> None:
    outcome = TaskRouter().line(broken)
    assert outcome.rejected and not outcome.events, outcome


def test_ccpulse_convert_from_twilio_taskrouter() -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline", "convert", "--from", "twilio-taskrouter", str(FIXTURE)],
                          capture_output=True, cwd=REPO, timeout=60)  # fmt: skip
    assert done.returncode == 1  # two lines rejected
    assert len(done.stdout.splitlines()) == 16
    assert b"line 17: rejected (bad_event)" in done.stderr and b"twilio-taskrouter: 19 lines" in done.stderr
