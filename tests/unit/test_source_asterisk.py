"""Asterisk's queue_log as contract events (pipeline/sources/asterisk.py, docs/sources.md).

The fixture ``tests/fixtures/asterisk/queue_log`` is built from the event reference of Asterisk's
"Queue Logs" documentation (the events and their parameters: ENTERQUEUE(url|callerid),
CONNECT(holdtime|bridgedchanneluniqueid|ringtime), COMPLETECALLER/COMPLETEAGENT(holdtime|calltime|
origposition), ABANDON(position|origposition|waittime), EXITWITHTIMEOUT and EXITEMPTY(position|
origposition|waittime), BLINDTRANSFER(extension|context|holdtime|calltime|origposition),
ATTENDEDTRANSFER(BRIDGE|bridge|holdtime|calltime|origposition), RINGNOANSWER(ringtime), ADDMEMBER,
REMOVEMEMBER, PAUSE, UNPAUSEALL), and its own example line
``1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000``.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from pipeline.core.contract import check
from pipeline.sources import Summary, convert
from pipeline.sources.asterisk import QueueLog, queue_name

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
REPO = Path(__file__).resolve().parents[2]


def events_of(path: Path, zone: str = "UTC") -> list[dict]:  # type: ignore[type-arg]
    with open(path, "rb") as lines:
        return [
            event for _, outcome in convert("asterisk-queue-log", lines, ZoneInfo(zone)) for event in outcome.events
        ]


def by_contact(events: list[dict]) -> dict[str, dict[str, dict]]:  # type: ignore[type-arg]
    found: dict[str, dict[str, dict]] = defaultdict(dict)  # type: ignore[type-arg]
    for event in events:
        if "contact_id" in event:
            found[event["contact_id"]][event["type"]] = event
    return found


def seconds_between(later: dict, earlier: dict) -> float:  # type: ignore[type-arg]
    a = check(orjson.dumps(later)).event
    b = check(orjson.dumps(earlier)).event
    assert a is not None and b is not None
    return (a.at - b.at) / 1e6


def test_every_event_is_valid_under_the_contract_and_ids_are_unique() -> None:
    events = events_of(FIXTURES / "queue_log")
    for event in events:
        verdict = check(orjson.dumps(event))
        assert verdict.valid, (event, verdict.reason, verdict.detail)
    assert len({e["event_id"] for e in events}) == len(events)


def test_waits_and_talk_times_are_the_ones_asterisk_recorded() -> None:
    contacts = by_contact(events_of(FIXTURES / "queue_log"))
    call = contacts["ast:1366720310.101:support"]
    assert seconds_between(call["contact.answered"], call["contact.offered"]) == 12  # CONNECT's holdtime
    assert call["contact.ended"]["talk_seconds"] == 78 and call["contact.ended"]["resolved"] is True
    assert call["contact.offered"]["customer_id"] == "+81312345678"
    # CONNECT logged a second after entry + holdtime: the recorded hold time (30 s) is the wait
    late = contacts["ast:1366720500.400:billing"]
    assert seconds_between(late["contact.answered"], late["contact.offered"]) == 30
    assert late["contact.ended"]["talk_seconds"] == 119 and late["contact.ended"]["resolved"] is False  # transfer
    attended = contacts["ast:1366720700.500:billing"]
    assert attended["contact.ended"]["talk_seconds"] == 95
    # both transfers are contact.transferred too (issue 22), at the line's time, where to kept raw
    assert late["contact.transferred"]["occurred_at"] == late["contact.ended"]["occurred_at"]
    assert late["contact.transferred"]["asterisk_transfer"] == "800@from-internal"
    assert attended["contact.transferred"]["asterisk_transfer"] == "BRIDGE|1366720790.777"
    assert "contact.transferred" not in call  # COMPLETEAGENT: no transfer
    assert contacts["ast:1366720950.700:support"]["contact.ended"]["talk_seconds"] == 147


def test_abandons_timeouts_and_odd_queue_names() -> None:
    contacts = by_contact(events_of(FIXTURES / "queue_log"))
    desk = queue_name("Support Desk")
    assert desk.startswith("Support_Desk-") and len(desk) == len("Support_Desk-") + 8
    abandoned = contacts[f"ast:1366720410.200:{desk}"]
    assert seconds_between(abandoned["contact.abandoned"], abandoned["contact.offered"]) == 5  # ABANDON's waittime
    assert abandoned["contact.offered"]["customer_id"] == "anonymous:1366720410.200"
    assert abandoned["contact.offered"]["asterisk_queue"] == "Support Desk"
    for left in ("ast:1366720420.300:billing", "ast:1366720900.600:billing"):  # EXITWITHTIMEOUT, EXITEMPTY
        assert set(contacts[left]) == {"contact.offered", "contact.ended"}
        assert (
            contacts[left]["contact.ended"]["resolved"] is False
            and "talk_seconds" not in contacts[left]["contact.ended"]
        )
    assert queue_name("billing") == "billing" and queue_name("Support Desk") != queue_name("Support_Desk")


def test_agents_follow_membership_pauses_and_calls() -> None:
    states = [(e["agent_id"], e["state"], tuple(e["queues"])) for e in events_of(FIXTURES / "queue_log")
              if e["type"] == "agent.state_changed" and e["agent_id"] == "SIP/8007"]  # fmt: skip
    assert states[:2] == [("SIP/8007", "available", ("support",)), ("SIP/8007", "available", ("billing", "support"))]
    assert ("SIP/8007", "on_contact", ("billing", "support")) in states
    paused = states.index(("SIP/8007", "away", ("billing", "support")))  # paused in both queues: away
    assert states[paused - 1] == ("SIP/8007", "available", ("billing", "support"))  # paused in one: still available
    assert states[-2:] == [("SIP/8007", "available", ("billing", "support")), ("SIP/8007", "offline", ())]


def test_a_file_read_twice_gives_the_same_events() -> None:
    assert events_of(FIXTURES / "queue_log") == events_of(FIXTURES / "queue_log")


def test_the_realtime_table_exported_as_csv_reads_like_the_file_in_its_zone() -> None:
    table = by_contact(events_of(FIXTURES / "queue_log_table.csv", zone="Asia/Tokyo"))
    call = table["ast:1366720310.101:support"]
    assert call["contact.offered"]["occurred_at"] == "2013-04-23T12:31:50.125Z"  # 21:31:50.125 in Tokyo
    assert seconds_between(call["contact.answered"], call["contact.offered"]) == 12
    assert call["contact.ended"]["talk_seconds"] == 78


def test_unreadable_lines_are_rejected_with_a_reason_and_the_rest_goes_on() -> None:
    source = QueueLog()
    summary = Summary()
    for raw in [b"garbage", b"yesterday|1.1|q|NONE|ENTERQUEUE||123|1", b"1366720310|1.1|q|NONE|ENTERQUEUE||123|1",
                b"1366720311|NONE|NONE|NONE|CONNECT|1|x|1", b""]:  # fmt: skip
        summary.add(source.line(raw))
    assert summary.rejected == {"unreadable": 2, "no_queue": 1}
    assert summary.converted == 1 and summary.skipped == {"blank": 1}
    assert "5 lines: 1 converted into 1 events" in summary.line("asterisk-queue-log")


def test_convert_on_the_command_line_writes_events_and_a_summary(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "convert", "--from", "asterisk-queue-log", str(FIXTURES / "queue_log")],
        capture_output=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.splitlines()
    assert [orjson.loads(line) for line in lines] == events_of(FIXTURES / "queue_log")
    summary = result.stderr.decode().strip().splitlines()[-1]
    assert summary.startswith("asterisk-queue-log: 29 lines: ") and "0 rejected" in summary
    assert "RINGNOANSWER 2" in summary
    validated = subprocess.run([sys.executable, "-m", "pipeline", "validate", "-"], input=result.stdout,
                               capture_output=True, cwd=tmp_path, timeout=60)  # fmt: skip
    assert validated.returncode == 0, validated.stderr.decode()


def test_the_simulator_written_as_a_queue_log_converts_back_to_its_own_calls() -> None:
    """``simulate --as asterisk-queue-log``, converted back: every voice call of the simulator, with
    its queue, caller, and offer, answer, abandonment and end at the same (whole) seconds, its handle
    time cut to whole seconds; nothing else. (Surveys, reasons and dispositions are not in queue_log.)"""
    import math
    from datetime import UTC, datetime, timedelta

    from pipeline.simulation import Simulation
    from pipeline.sources.asterisk_out import queue_log_lines, seconds

    events = list(Simulation(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), seed=5).events(timedelta(hours=3)))
    voice = {str(e["contact_id"]) for e in events if e["type"] == "contact.offered" and e["channel"] == "voice"}
    assert len(voice) > 500

    def calls(stream: list[dict], contact_of) -> dict:  # type: ignore[no-untyped-def,type-arg]
        found: dict = {}  # type: ignore[type-arg]
        for e in stream:
            contact = contact_of(e)
            if contact not in voice or e["type"] in ("survey.responded", "contact.transferred"):  # not written
                continue
            call = found.setdefault(contact, {})
            call.setdefault(e["type"], seconds(e["occurred_at"]))
            if e["type"] == "contact.offered":
                call["who"] = (e["queue"], e["customer_id"])
            if e["type"] == "contact.ended" and "contact.answered" in call:
                call["handle"] = math.floor(sum(e.get(n, 0) for n in ("talk_seconds", "hold_seconds", "acw_seconds")))
        return found

    source = QueueLog()
    back = [event for line in queue_log_lines(events) for event in source.line(line).events]
    assert all(check(orjson.dumps(event)).valid for event in back)
    simulated = calls(events, lambda e: e.get("contact_id"))
    converted = calls(back, lambda e: str(e.get("contact_id", "")).split(":")[1] if "contact_id" in e else None)
    assert converted == simulated
    assert {e["type"] for e in back} == {"contact.offered", "contact.answered", "contact.abandoned", "contact.ended",
                                         "agent.state_changed"}  # fmt: skip
