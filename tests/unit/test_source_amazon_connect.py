"""Amazon Connect contact records, contact events and agent events as contract events
(pipeline/sources/amazon_connect.py, amazon_connect_events.py, docs/sources.md).

The fixture ``tests/fixtures/amazon_connect/contact_records.jsonl`` is built from the contact
record data model of the Amazon Connect administrator guide ("Data model for Amazon Connect
contact records": ContactTraceRecord, Agent, QueueInfo, Endpoint; "How to identify abandoned
contacts": queued, with an EnqueueTimestamp and no ConnectedToAgentTimestamp), with its field
names and timestamp format (``yyyy-mm-ddThh:mm:ssZ``), plus one record in the millisecond form
exports also carry, a record delivered twice (Connect delivers records at least once), and two
broken lines.

``tests/fixtures/amazon_connect/events.jsonl`` is built from the "Contact events data model"
(EventBridge ``Amazon Connect Contact Event``: ``eventType`` INITIATED, QUEUED, CONNECTED_TO_AGENT,
DISCONNECTED, COMPLETED with ``queueInfo``, ``agentInfo`` and ``disconnectReason``) and the "Agent
event streams data model" (LOGIN, STATE_CHANGE, HEART_BEAT, LOGOUT with the agent's current and
previous snapshots: status, routing profile and its inbound queues, contacts and their states): a
call answered, held and wrapped up, a chat abandoned, a call the flow disconnected in the queue, a
callback, a broken event, and one agent's day around the call.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from pipeline.core.contract import check
from pipeline.sources import Summary, convert
from tests.round_trip import contact_facts, finished_contacts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "amazon_connect" / "contact_records.jsonl"
REPO = Path(__file__).resolve().parents[2]


def converted() -> tuple[list[dict], Summary]:  # type: ignore[type-arg]
    summary = Summary()
    events = []
    with open(FIXTURE, "rb") as lines:
        for _, outcome in convert("amazon-connect", lines, UTC):
            summary.add(outcome)
            events += outcome.events
    return events, summary


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def records() -> dict[str, dict]:  # type: ignore[type-arg]
    found = {}
    for line in FIXTURE.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if "ContactId" in record:
            found[record["ContactId"]] = record
    return found


def test_every_event_is_valid_and_a_record_delivered_again_gives_the_same_events() -> None:
    events, _ = converted()
    for event in events:
        verdict = check(orjson.dumps(event))
        assert verdict.event is not None, (event, verdict.reason, verdict.detail)
    ids = [event["event_id"] for event in events]
    assert len(ids) == 20 and len(set(ids)) == 17  # c-answered's record came twice: the same 3 events
    twice = [event for event in events if event["contact_id"] == "connect:c-answered"]
    assert twice[:3] == twice[3:]


def test_waits_talk_hold_and_after_contact_work_are_connect_s_own() -> None:
    events, _ = converted()
    by = {(e["contact_id"], e["type"]): e for e in events}
    for contact, record in records().items():
        offered = by.get((f"connect:{contact}", "contact.offered"))
        answered = by.get((f"connect:{contact}", "contact.answered"))
        if offered is None or answered is None:
            continue
        wait = (at(answered["occurred_at"]) - at(offered["occurred_at"])).total_seconds()
        assert wait == record["Queue"]["Duration"], contact  # Connect's queue duration, to the second
        ended = by[(f"connect:{contact}", "contact.ended")]
        agent = record["Agent"]
        assert (ended["talk_seconds"], ended["hold_seconds"], ended["acw_seconds"]) == (
            agent["AgentInteractionDuration"],
            agent["CustomerHoldDuration"],
            agent["AfterContactWorkDuration"],
        )
        assert answered["agent_id"] == agent["Username"]
    answered_one = by[("connect:c-answered", "contact.ended")]
    assert answered_one["occurred_at"] == "2026-11-23T09:04:15Z"  # the end of after-contact work


def test_abandons_resolution_odd_queue_names_and_missing_customers() -> None:
    events, _ = converted()
    by = {(e["contact_id"], e["type"]): e for e in events}
    assert by[("connect:c-abandoned", "contact.abandoned")]["occurred_at"] == "2026-11-23T09:01:42Z"
    assert ("connect:c-abandoned", "contact.answered") not in by
    assert by[("connect:c-answered", "contact.ended")]["resolved"] is True
    assert by[("connect:c-chat", "contact.ended")]["resolved"] is False  # the flow's attribute
    assert by[("connect:c-transferred", "contact.ended")]["resolved"] is False  # transferred on
    transferred = by[("connect:c-transferred", "contact.transferred")]  # issue 22: at the leg's end
    assert (transferred["occurred_at"], transferred["connect_next_contact"]) == (
        "2026-11-23T09:11:43Z",
        "c-transferred-2",
    )
    assert ("connect:c-answered", "contact.transferred") not in by
    # left the queue by the flow's timeout, not by hanging up: ended unanswered, not abandoned
    assert ("connect:c-timeout", "contact.abandoned") not in by
    assert by[("connect:c-timeout", "contact.ended")]["occurred_at"] == "2026-11-23T09:35:05Z"
    timeout_offer = by[("connect:c-timeout", "contact.offered")]
    assert (timeout_offer["reason"], timeout_offer["case_id"]) == ("billing_question", "CASE-77")  # attributes
    chat = by[("connect:c-chat", "contact.offered")]
    assert chat["queue"].startswith("Support_Desk-") and chat["connect_queue"] == "Support Desk"
    assert chat["customer_id"] == "anonymous:c-chat" and chat["channel"] == "chat"
    assert not [e for e in events if e["contact_id"] in ("connect:c-outbound", "connect:c-ivr", "connect:c-task")]
    # the transfer's leg into Billing is a contact of Billing (issue 22), offered at its enqueue time
    leg = by[("connect:c-transferred-2", "contact.offered")]
    assert (leg["queue"], leg["occurred_at"]) == ("Billing", "2026-11-23T09:11:43Z")


def test_the_summary_names_what_was_skipped_and_rejected() -> None:
    _, summary = converted()
    assert (summary.lines, summary.converted, summary.events) == (12, 7, 20)
    assert summary.skipped == {"initiation_outbound": 1, "not_queued": 1, "channel_task": 1}
    assert summary.rejected == {"unreadable": 1, "bad_record": 1}


def test_ccpulse_convert_from_amazon_connect() -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline", "convert", "--from", "amazon-connect", str(FIXTURE)],
                          capture_output=True, cwd=REPO, timeout=60)  # fmt: skip
    assert done.returncode == 1  # two lines rejected
    assert len(done.stdout.splitlines()) == 20
    assert b"line 11: rejected (bad_record)" in done.stderr and b"amazon-connect: 12 lines" in done.stderr


def test_fields_of_the_wrong_shape_are_rejected_not_a_crash() -> None:
    from pipeline.sources.amazon_connect import ContactRecords

    source = ContactRecords()
    for broken in ({"ContactId": "x", "InitiationMethod": "INBOUND", "Channel": "VOICE", "Queue": "BasicQueue"},
                   {"ContactId": "x", "InitiationMethod": "INBOUND", "Channel": "VOICE",
                    "Queue": {"Name": "q", "EnqueueTimestamp": "2026-11-23T09:00:00Z"}, "Agent": ["a"]},
                   {"ContactId": "x", "InitiationMethod": "INBOUND", "Channel": "VOICE", "CustomerEndpoint": 7,
                    "Queue": {"Name": "q", "EnqueueTimestamp": "2026-11-23T09:00:00Z"}}):  # fmt: skip
        outcome = source.line(orjson.dumps(broken))
        assert outcome.rejected == "bad_record" and not outcome.events, broken
    assert source.line(b"[1, 2]").rejected == "unreadable"


def test_the_simulator_written_as_contact_records_converts_back_to_its_own_contacts() -> None:
    """``simulate --as amazon-connect``, converted back: every finished voice, chat and email
    contact of the simulator, with its queue, channel, customer, reason and case, its offer,
    answer, abandonment and end at the same instants, its agent, disposition, and talk, hold and
    after-contact work in whole seconds (Connect records whole seconds); nothing else. (Surveys
    and agent states are not contact records.)"""
    from datetime import timedelta

    from pipeline.simulation import Simulation
    from pipeline.sources.amazon_connect import ContactRecords
    from pipeline.sources.amazon_connect_out import contact_records

    events = list(Simulation(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), seed=5).events(timedelta(hours=3)))
    kept = finished_contacts(events, {"voice", "chat", "email"})
    assert (
        len(kept) > 500 and len({e["channel"] for e in events if e.get("contact_id") in kept and "channel" in e}) == 3
    )

    def whole_seconds(ended: dict) -> tuple:  # type: ignore[type-arg]
        return tuple(round(ended.get(n, 0)) for n in ("talk_seconds", "hold_seconds", "acw_seconds"))

    source = ContactRecords()
    back = [event for line in contact_records(events) for event in source.line(line).events]
    assert all(check(orjson.dumps(event)).event is not None for event in back)
    simulated = contact_facts(events, kept, lambda e: e.get("contact_id"), whole_seconds)
    converted = contact_facts(back, kept, lambda e: str(e["contact_id"]).removeprefix("connect:"), whole_seconds)
    assert converted == simulated
    assert {e["type"] for e in back} == {"contact.offered", "contact.answered", "contact.abandoned", "contact.ended"}


EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "amazon_connect" / "events.jsonl"
QUEUE, AGENT = "aaaaaaaa-bbbb-cccc-dddd-222222222222", "aaaaaaaa-bbbb-cccc-dddd-333333333333"


def from_events() -> tuple[list[dict], Summary]:  # type: ignore[type-arg]
    summary, events = Summary(), []
    with open(EVENTS, "rb") as lines:
        for _, outcome in convert("amazon-connect", lines, UTC):
            summary.add(outcome)
            events += outcome.events
    return events, summary


def test_contact_events_give_the_contacts_as_the_records_would() -> None:
    events, summary = from_events()
    assert all(check(orjson.dumps(event)).event is not None for event in events)
    by = {(e.get("contact_id"), e["type"]): e for e in events}
    offered = by[("connect:ev-answered", "contact.offered")]
    assert (offered["occurred_at"], offered["queue"], offered["customer_id"]) == ("2026-11-23T09:00:00Z", QUEUE,
                                                                                  "+14155550100")  # fmt: skip
    assert by[("connect:ev-answered", "contact.answered")]["agent_id"] == AGENT  # contact events: the ARN's id
    ended = by[("connect:ev-answered", "contact.ended")]
    # COMPLETED: talk from the agent's connection to the disconnect, then 45 s of after-contact work
    assert (ended["occurred_at"], ended["talk_seconds"], ended["acw_seconds"]) == ("2026-11-23T09:06:05Z", 300.0, 45.0)
    assert by[("connect:ev-abandoned", "contact.abandoned")]["occurred_at"] == "2026-11-23T09:01:30Z"
    assert by[("connect:ev-abandoned", "contact.offered")]["customer_id"] == "anonymous:ev-abandoned"
    assert ("connect:ev-timeout", "contact.abandoned") not in by  # the flow's disconnect is no abandon
    assert by[("connect:ev-timeout", "contact.ended")]["resolved"] is False
    assert summary.rejected == {"bad_record": 1} and summary.skipped["initiation_callback"] == 1
    assert summary.skipped["contact_event_disconnected"] == 1  # an answered contact ends with COMPLETED


def test_agent_events_follow_the_agent_s_status_and_contacts() -> None:
    events, summary = from_events()
    states = [(e["occurred_at"], e["state"]) for e in events if e["type"] == "agent.state_changed"]
    assert states == [
        ("2026-11-23T08:30:00Z", "available"),  # LOGIN
        ("2026-11-23T09:00:20Z", "on_contact"),  # the call connected (then held: still on the contact)
        ("2026-11-23T09:05:20Z", "after_contact_work"),  # the contact ENDED: ACW
        ("2026-11-23T09:06:05Z", "available"),
        ("2026-11-23T09:10:00Z", "away"),  # the status "Break" (CUSTOM)
        ("2026-11-23T09:30:00Z", "offline"),  # LOGOUT
    ]
    agents = [e for e in events if e["type"] == "agent.state_changed"]
    assert {e["agent_id"] for e in agents} == {"alice"}  # the agent's user name
    assert agents[0]["queues"] == sorted([QUEUE, f"{QUEUE}x"])  # its routing profile's inbound queues, by id
    assert summary.skipped["agent_heart_beat"] == 1 and summary.skipped["agent_event_no_change"] == 1


def test_a_record_and_the_events_of_one_contact_give_the_same_event_ids() -> None:
    """Fed both (records to S3, events to a dashboard), a contact's events share ids: counted once."""
    record = {"ContactId": "ev-answered", "InitiationMethod": "INBOUND", "Channel": "VOICE",
              "Queue": {"Name": QUEUE, "EnqueueTimestamp": "2026-11-23T09:00:00Z"},
              "Agent": {"Username": "alice", "ConnectedToAgentTimestamp": "2026-11-23T09:00:20Z"},
              "DisconnectTimestamp": "2026-11-23T09:05:20Z"}  # fmt: skip
    from_record = {e["event_id"] for e in convert_one(record)}
    events, _ = from_events()
    assert from_record == {e["event_id"] for e in events if e.get("contact_id") == "connect:ev-answered"}


def convert_one(record: dict) -> tuple:  # type: ignore[type-arg]
    from pipeline.sources.amazon_connect import ContactRecords

    return ContactRecords().line(orjson.dumps(record)).events
