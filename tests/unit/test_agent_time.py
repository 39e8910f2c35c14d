"""Time in state, occupancy, utilisation and the agent list (issue 22) against the brute-force model
(tests/metrics_model.py): the contacts pass in any batches, any order, with duplicates, feeding a
board, read at any now at or after the latest event."""

from __future__ import annotations

import random
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.agent_time import Stint, changes, day_pieces, insert, intervals, open_time, overlap
from pipeline.core.agent_view import agent_list, agents_offline, occupancy, queue_time, utilisation
from pipeline.core.board import AgentRecentPartial, Board
from pipeline.core.contact_pass import ContactPass
from pipeline.core.contract import Event
from pipeline.core.targets import Targets
from pipeline.core.windows import Day
from pipeline.core.wire import Routed
from tests import metrics_model
from tests.unit.test_metrics_core import BASE, MINUTE, SETTINGS, ZONES, contact_events

NO_EXPIRY_US = 10 * 365 * 86400 * 1_000_000
TARGETS = Targets.from_document({"queues": {"q1": {"timezone": "Asia/Kolkata", "day_starts": "06:00"}}})
near = st.integers(0, 4 * 3600).map(lambda s: BASE + 20 * 3600 * 1_000_000 + s * 1_000_000) | st.integers(
    0, 2 * 86400
).map(lambda s: BASE + s * 1_000_000)


@st.composite
def agent_events(draw: st.DrawFn) -> list[Event]:
    events = []
    for number in range(draw(st.integers(0, 12))):
        events.append(Event(f"s{number}-{draw(st.integers(0, 2))}", "agent.state_changed", draw(near),
                            agent_id=draw(st.sampled_from(["a0", "a1", "a2"])),
                            state=draw(st.sampled_from(["available", "on_contact", "after_contact_work", "away",
                                                        "offline"])),
                            queues=tuple(draw(st.lists(st.sampled_from(["q0", "q1"]), max_size=3))),
                            reason=draw(st.none() | st.sampled_from(["lunch", "training"]))))  # fmt: skip
    return events


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[Event, str]], int, ZoneInfo]:
    events = draw(agent_events())
    for number in range(draw(st.integers(0, 4))):
        events += [
            Event(
                e.event_id,
                e.type,
                e.at,
                e.contact_id,
                e.channel,
                e.queue,
                e.customer_id,
                e.reason,
                e.case_id,
                draw(st.sampled_from(["a0", "a1"])) if e.type == "contact.answered" else e.agent_id,
                e.talk_seconds,
                e.hold_seconds,
                e.acw_seconds,
                e.resolved,
                e.csat,
                e.nps,
                e.ces,
            )  # fmt: skip
            for e in draw(contact_events(f"c{number}"))
        ]
    messages = [(event, f"0:{offset}") for offset, event in enumerate(events)]
    messages += (
        [(event, f"1:{offset}") for offset, event in enumerate(draw(st.lists(st.sampled_from(events))))]
        if events
        else []
    )  # fmt: skip  (retries)
    random.Random(draw(st.integers(0, 2**32))).shuffle(messages)
    latest = max((event.at for event, _ in messages), default=BASE)
    later = [0, 1, 59 * 1_000_000, 7 * MINUTE, 3 * 3600 * 1_000_000, 30 * 3600 * 1_000_000]
    now = latest + draw(st.sampled_from(later))
    return messages, now, draw(st.sampled_from(ZONES))


def through_the_pass(messages: list[tuple[Event, str]], zone: ZoneInfo, data: st.DataObject,
                     now: int | None = None) -> Board:  # fmt: skip
    """The board after the pass's batches (drawn); with ``now``, read at ``now`` after every batch too
    (so that a later read at ``now`` takes the sums the board kept as partials came and went)."""
    contact_pass = ContactPass(TARGETS, NO_EXPIRY_US, day=TARGETS.agent_day(zone))
    board = Board()
    log = [(offset, Routed(source, event)) for offset, (event, source) in enumerate(messages)]
    position = 0
    while position < len(log):
        end = data.draw(st.integers(position + 1, len(log)), label="batch end")
        out = contact_pass.on_batch(log[position:end], wall=0.0)
        for partial in [*out.minutes, *out.live, *out.agents]:
            board.apply_partial(partial)
        if now is not None:
            shown_time(board, now, zone)
        position = end
    return board


def shown_time(board: Board, now: int, zone: ZoneInfo) -> dict[tuple[str, str], list[int]]:
    found = queue_time(board, now, lambda queue: TARGETS.day_for(queue, zone))
    return {(queue, window): seconds for queue, window, seconds in found if any(seconds)}


def shown_agents(board: Board, now: int, zone: ZoneInfo) -> dict[str, Any]:
    return {each["agent_id"]: each for each in agent_list(board, now, TARGETS.agent_day(zone))}


@SETTINGS
@given(scenarios(), st.data())
def test_time_in_state_per_queue_and_window_equals_the_model(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    messages, now, zone = scenario
    board = through_the_pass(messages, zone, data, now if data.draw(st.booleans(), label="read between") else None)
    expected = {key: seconds for key, seconds in metrics_model.agent_time(messages, now, zone, TARGETS).items()
                if any(seconds)}  # fmt: skip
    assert shown_time(board, now, zone) == expected


@SETTINGS
@given(scenarios(), st.data())
def test_the_agent_list_equals_the_model(scenario: tuple[list[tuple[Event, str]], int, ZoneInfo],
                                         data: st.DataObject) -> None:  # fmt: skip
    messages, now, zone = scenario
    board = through_the_pass(messages, zone, data)
    expected = metrics_model.agent_list(messages, now, zone, TARGETS)
    shown = shown_agents(board, now, zone)
    assert shown.keys() == expected.keys()
    for agent_id, want in expected.items():
        got = shown[agent_id]
        assert (got["state"], got["queues"], got["reason"]) == (want["state"], want["queues"], want["reason"])
        assert got["since"] == (None if want["since"] is None else want["since"] / 1e6)
        contact = want["contact"]
        assert got["contact"] == (None if contact is None else {
            "contact_id": contact[0], "queue": contact[1], "channel": contact[2],
            "seconds": (now - contact[3]) / 1e6})  # fmt: skip
        assert got["today"]["handled"] == want["handled"]
        aht = want["handle_us"] / 1e6 / want["handled"] if want["handled"] else None
        assert got["today"]["aht_seconds"] == aht
        assert got["today"]["occupancy"] == occupancy(want["spent"])


@SETTINGS
@given(scenarios(), st.data())
def test_the_agent_list_of_some_queues_and_the_offline_count_equal_the_model(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    messages, now, zone = scenario
    board = through_the_pass(messages, zone, data)
    expected = metrics_model.agent_list(messages, now, zone, TARGETS)
    queues = frozenset(data.draw(st.lists(st.sampled_from(["q0", "q1", "nobody's"]), min_size=1), label="queues"))
    shown = agent_list(board, now, TARGETS.agent_day(zone), queues)
    assert [each["agent_id"] for each in shown] == sorted(
        agent_id for agent_id, want in expected.items() if queues & set(want["queues"])
    )
    everyone = shown_agents(board, now, zone)
    assert all(each == everyone[each["agent_id"]] for each in shown)  # the same entries, only fewer
    assert agents_offline(board) == sum(want["state"] == "offline" for want in expected.values())


def test_occupancy_and_utilisation_follow_their_definitions() -> None:
    # available 20 min, on a contact 30, after-contact work 10, away 40
    seconds = [20, 30, 10, 40]
    assert occupancy(seconds) == 40 / 60  # 占有率: (on contact + ACW) / (that + available)
    assert utilisation(seconds) == 60 / 100  # 稼働率: (on contact + ACW + available) / every timed state
    assert occupancy([0, 0, 0, 5]) is None and utilisation([0, 0, 0, 0]) is None


def test_an_event_in_the_middle_splits_the_interval_it_falls_in() -> None:
    a = Stint(0, "a", "available", ("q",))
    c = Stint(600 * 1_000_000, "c", "away", ("q",))
    history = [a, c]
    before = list(history)
    assert insert(history, Stint(60 * 1_000_000, "b", "on_contact", ("q",)))
    assert not insert(history, Stint(60 * 1_000_000, "b", "away", ("q",)))  # known: the first copy stays
    removed, added = changes(before, history)
    assert removed == {(0, 600_000_000, "available", ("q",))}
    assert added == {(0, 60_000_000, "available", ("q",)), (60_000_000, 600_000_000, "on_contact", ("q",))}
    assert list(intervals(history)) == sorted(added)


def test_pieces_split_at_the_day_start_of_the_zone() -> None:
    tokyo = Day(ZoneInfo("Asia/Tokyo"))  # midnight in Tokyo is 15:00 UTC
    start = BASE + 14 * 3600 * 1_000_000  # 14:00 UTC
    found = list(day_pieces(start, start + 2 * 3600 * 1_000_000, tokyo))
    assert [us for _, us in found] == [3600 * 1_000_000, 3600 * 1_000_000]
    assert found[1][0] == BASE + 15 * 3600 * 1_000_000


@given(st.lists(st.integers(0, 100)), st.integers(0, 100), st.integers(0, 100))
def test_open_time_is_the_sum_of_each_open_intervals_overlap(since: list[int], start: int, now: int) -> None:
    assert open_time(sorted(since), start, now) == sum(overlap(each, start, now) for each in since)


def test_an_interval_that_ends_after_now_counts_up_to_now() -> None:
    # a clock behind the events' (the board's now before an interval's end): cut at now, read or kept
    now, second = BASE + 3 * 3600 * 1_000_000, 1_000_000
    board = Board()
    board.recent_time("q0", now - 3600 * second, now - 900 * second, now)  # sums kept from here on
    board.apply_partial(AgentRecentPartial(0, "q0", "a0", ((now - 600 * second, now + 600 * second, 0),), 0, 1))
    in_hour, in_quarter = board.recent_time("q0", now - 3600 * second, now - 900 * second, now)
    assert in_hour[0] == in_quarter[0] == 600 * second
    later = now + 3600 * second  # the windows moved past its start: the hour has its last 600 s
    in_hour, in_quarter = board.recent_time("q0", later - 3600 * second, later - 900 * second, later)
    assert (in_hour[0], in_quarter[0]) == (600 * second, 0)
