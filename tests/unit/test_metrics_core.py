"""The metric core against the brute-force model of METRICS.md (tests/metrics_model.py).

Named invariants, each over generated event sets:
1. Exactness: window counts, live waiting, agents and health equal the model's.
2. Arrival order never changes a result (the same set in another order gives the same board).
3. Replays are no-ops: delivering messages again (same source) changes nothing.
"""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.board import Board, Report
from pipeline.core.contract import Event
from pipeline.core.counts import Counts
from pipeline.core.engine import Engine, IssueBatch, IssueGroup, IssueLink, issues_of
from pipeline.core.targets import Targets
from tests.metrics_model import COUNT_FIELDS, model

MINUTE = 60_000_000
BASE = 1_795_392_000_000_000  # 2026-11-23T00:00:00Z
ZONES = [ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")]

times = st.integers(0, 3 * 86400).map(lambda s: BASE + s * 1_000_000) | st.integers(0, 200).map(
    lambda m: BASE + m * MINUTE + 123
)


@st.composite
def contact_events(draw: st.DrawFn, contact: str) -> list[Event]:
    events: list[Event] = []
    serial = 0

    def eid() -> str:
        nonlocal serial
        serial += 1
        return f"{contact}-{serial}-{draw(st.integers(0, 3))}"

    offered_at = draw(times)
    for _ in range(draw(st.integers(0, 3))):  # 0: never offered (its other events wait forever)
        events.append(Event(eid(), "contact.offered", draw(st.sampled_from([offered_at, draw(times)])), contact,
                            draw(st.sampled_from(["voice", "chat", "email"])), draw(st.sampled_from(["q0", "q1"])),
                            draw(st.sampled_from(["cu0", "cu1", "cu2"])), draw(st.sampled_from(["r0", "r1"])),
                            draw(st.none() | st.sampled_from(["case0", "case1"]))))  # fmt: skip
    near = (
        st.integers(-30, 900).map(lambda s: offered_at + s * 1_000_000)
        | times
        | st.just(offered_at + 10_000_000)  # a time shared by several events: ties
    )
    for _ in range(draw(st.integers(0, 2))):
        events.append(Event(eid(), "contact.answered", draw(near), contact, agent_id="a0"))
    for _ in range(draw(st.integers(0, 1))):
        events.append(Event(eid(), "contact.abandoned", draw(near), contact))
    for _ in range(draw(st.integers(0, 2))):
        talk = draw(st.sampled_from([0, 12.5, 300.1]))
        events.append(Event(eid(), "contact.ended", draw(near), contact, talk_seconds=talk,
                            hold_seconds=draw(st.sampled_from([0, 7.25])), acw_seconds=30.0,
                            resolved=draw(st.booleans())))  # fmt: skip
    for _ in range(draw(st.integers(0, 1))):
        to_queue, to_agent = draw(st.none() | st.just("q1")), draw(st.none() | st.just("a9"))
        events.append(Event(eid(), "contact.transferred", draw(near), contact, to_queue=to_queue, to_agent=to_agent))
    for _ in range(draw(st.integers(0, 1))):
        events.append(Event(eid(), "survey.responded", draw(near), contact, csat=draw(st.none() | st.integers(1, 5)),
                            nps=draw(st.none() | st.integers(0, 10)), ces=draw(st.integers(1, 7))))  # fmt: skip
    return events


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[Event, str]], int, ZoneInfo]:
    events: list[Event] = []
    for number in range(draw(st.integers(1, 9))):
        events += draw(contact_events(f"c{number}"))
    for number in range(draw(st.integers(0, 6))):
        events.append(Event(f"ag{number}", "agent.state_changed", draw(times), agent_id=f"a{number % 3}",
                            state=draw(st.sampled_from(["available", "on_contact", "away", "offline"])),
                            queues=tuple(draw(st.lists(st.sampled_from(["q0", "q1"]), max_size=2)))))  # fmt: skip
    messages = [(event, f"0:{offset}") for offset, event in enumerate(events)]
    messages += [
        (event, f"1:{offset}") for offset, event in enumerate(draw(st.lists(st.sampled_from(events))) if events else [])
    ]  # fmt: skip  (retries)
    random.Random(draw(st.integers(0, 2**32))).shuffle(messages)
    latest = max((event.at for event, _ in messages), default=BASE)
    now = draw(st.sampled_from([latest, latest + draw(st.integers(0, 2 * 86400)) * 1_000_000, BASE + 100 * MINUTE]))
    return messages, now, draw(st.sampled_from(ZONES))


DEFAULT_TARGETS = Targets()


def board_counts(board: Board, now: int, zone: ZoneInfo,
                 targets: Targets = DEFAULT_TARGETS) -> dict[tuple[str, str, str], dict[str, int]]:  # fmt: skip
    return {(q, c, w): dict(zip(COUNT_FIELDS, counts.as_tuple(), strict=True))
            for q, c, w, counts in board.window_counts(now, lambda queue: targets.day_for(queue, zone))}  # fmt: skip


def nonzero(counts: dict[tuple[str, str, str], dict[str, int]]) -> dict[tuple[str, str, str], dict[str, int]]:
    return {key: values for key, values in counts.items() if any(values.values())}


def run(messages: list[tuple[Event, str]], targets: Targets) -> Engine:
    engine = Engine(targets)
    for event, source in messages:
        engine.process(event, source)
    return engine


MODEL_TARGETS = Targets.from_document({"fcr_window_days": 1, "queues": {"q1": {"voice": {"sl_threshold_seconds": 60}}}})


def assert_equals_model(
    engine: Engine, messages: list[tuple[Event, str]], now: int, zone: ZoneInfo, targets: Targets
) -> None:
    """Window counts, live waiting, agents and health equal the brute-force model's."""
    expected = model(messages, now, zone, targets)
    assert nonzero(board_counts(engine.board, now, zone, targets)) == nonzero(expected.counts)
    waiting = {(q, c): (n, oldest) for q, c, n, oldest in engine.board.waiting(now)}
    assert {k: v for k, v in waiting.items() if v[0]} == {k: v for k, v in expected.waiting.items() if v[0]}
    assert {(q, s): n for q, s, n in engine.board.agents_by_state()} == expected.agents
    assert (engine.health.duplicates, engine.health.conflicts) == (expected.duplicates, expected.conflicts)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios())
def test_the_core_equals_the_model(scenario: tuple[list[tuple[Event, str]], int, ZoneInfo]) -> None:
    messages, now, zone = scenario
    targets = MODEL_TARGETS
    engine = run(messages, targets)
    assert_equals_model(engine, messages, now, zone, targets)


def cut_into_batches(messages: list[tuple[Event, str]], data: st.DataObject) -> list[list[tuple[Event, str]]]:
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(messages) - 1)), max_size=6), label="cuts"))
    return [messages[start:end] for start, end in zip([0, *cuts], [*cuts, len(messages)], strict=True)]


@SETTINGS
@given(scenarios(), st.data())
def test_batches_as_the_worker_takes_them_equal_the_model(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    # The worker applies a batch's messages first and reports each contact and issue key once,
    # and its board applies only each key's last report: any cut into batches gives the model.
    messages, now, zone = scenario
    targets = MODEL_TARGETS
    engine = Engine(targets)
    for batch in cut_into_batches(messages, data):
        engine.process_batch(batch)
    assert_equals_model(engine, messages, now, zone, targets)
    assert contents(engine.board.reports) == contents(run(messages, targets).board.reports)


@SETTINGS
@given(scenarios(), st.data())
def test_rows_and_links_sent_only_on_change_leave_every_contact_in_its_issue(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    # The issues stage sends a key's rows and links only for what changed since its batch began
    # (issue_changes), and takes each partition's updates on its own schedule, several contact
    # batches at once: still every answered contact ends with the link of the issue it is in.
    messages, _, _ = scenario
    engine = Engine(MODEL_TARGETS)
    for batch in cut_into_batches(messages, data):
        engine.process_batch(batch, data.draw(st.sampled_from([None, (), (0,), (1,)]), label="issues"))
    engine.process_issues()
    truth = {
        contact.contact_id: IssueLink(contact.contact_id, key, identifier, position > 0)
        for key, record in engine.issues.items()
        for identifier, issue in issues_of(record, key, MODEL_TARGETS)
        for position, contact in enumerate(issue.contacts)
    }
    assert {contact_id: engine.issue_of(contact_id) for contact_id in truth} == truth
    assert contents(engine.board.reports) == contents(run(messages, MODEL_TARGETS).board.reports)


def test_a_contact_that_passes_through_another_key_gets_its_link_again() -> None:
    # c0 is answered in (cu0, r0); an earlier offer moves it to (cu1, r0), whose partition's
    # issues stage links it there; a still earlier offer brings it back before (cu0, r0)'s
    # partition has taken the move: that batch sees c0 leave and return, its issue unchanged.
    key_home, key_away = "reason\x1fcu0\x1fr0", "reason\x1fcu1\x1fr0"
    assert (Engine.issue_partition(key_home), Engine.issue_partition(key_away)) == (0, 1)

    def offer(number: int, at_s: int, customer: str) -> tuple[Event, str]:
        return Event(
            f"o{number}", "contact.offered", BASE + at_s * 1_000_000, "c0", "voice", "q0", customer, "r0"
        ), f"0:{number}"

    engine = Engine(MODEL_TARGETS)
    engine.process_batch([offer(1, 100, "cu0"), (Event("a1", "contact.answered", BASE + 110_000_000, "c0",
                                                        agent_id="a0"), "0:2")])  # fmt: skip
    engine.process_batch([offer(3, 50, "cu1")], issue_partitions=(1,))
    away = engine.issue_of("c0")
    assert away is not None and away.key == key_away
    engine.process_batch([offer(4, 10, "cu0")], issue_partitions=(0,))
    link = engine.issue_of("c0")
    assert link is not None and link.key == key_home


@SETTINGS
@given(scenarios())
def test_a_replayed_issues_batch_sends_everything_again_and_a_repeated_one_nothing(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo],
) -> None:
    # The issues stage died after storing a batch's groups but before its reports, rows and links
    # were out: the batch comes again, changes nothing, and must send all of them (replay=True).
    # A batch that is new but repeats what the groups hold (a contact reported again with the same
    # facts) changes nothing and has nothing to send: its key's last outcome was sent already.
    messages, _, _ = scenario
    engine = Engine(MODEL_TARGETS)
    engine.process_batch(messages, issue_partitions=())  # the issue updates wait in the backlog
    updates, groups = engine.issue_backlog, dict[str, IssueGroup]()
    first = IssueBatch(MODEL_TARGETS, lambda key: groups.setdefault(key, IssueGroup()))
    for update in updates:
        first.apply(update)
    sent = {key: first.outcome(key) for key in first.groups}
    stored = msgspec.msgpack.encode(groups)
    for replay in (True, False):
        again = IssueBatch(MODEL_TARGETS, lambda key: groups[key])
        for update in updates:
            again.apply(update, replay=replay)
        resent = {key: again.outcome(key) for key in again.groups}
        assert msgspec.msgpack.encode(groups) == stored  # the groups did not change
        if replay:
            assert {key: (o.issues, o.links, contents({r.key: r for r in o.reports})) for key, o in resent.items()} == {
                key: (o.issues, o.links, contents({r.key: r for r in o.reports})) for key, o in sent.items()
            }
        else:
            assert [o for o in resent.values() if o.reports or o.issues or o.gone or o.links] == []


def contents(reports: dict[str, Report]) -> dict[str, Report]:
    """The reports without the sink's bookkeeping (a source's revision and the minutes it left
    depend on how many messages, and in what order, it has seen)."""
    return {key: msgspec.structs.replace(report, version=0, left=()) for key, report in reports.items()}


@SETTINGS
@given(scenarios(), st.randoms())
def test_arrival_order_and_replays_change_nothing(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], rng: random.Random
) -> None:
    messages, now, zone = scenario
    again = messages + [rng.choice(messages) for _ in range(len(messages) // 2)] if messages else []
    rng.shuffle(again)
    first, second = run(messages, Targets()), run(again, Targets())
    assert board_counts(first.board, now, zone) == board_counts(second.board, now, zone)
    assert contents(first.board.reports) == contents(second.board.reports)
    assert (first.health.duplicates, first.health.conflicts) == (second.health.duplicates, second.health.conflicts)


def test_counts_add_and_subtract() -> None:
    total = Counts(offered=2, wait_us_sum=5)
    total.add(Counts(offered=1, wait_us_sum=5), -1)
    assert total == Counts(offered=1) and not total.is_zero()


# Zones with half-hour offsets and daylight-saving changes (Lord Howe's is half an hour), and
# instants around their changes in 2026: a queue's "today" must begin at its own local day start.
DAY_ZONES = ["Asia/Tokyo", "Asia/Seoul", "Asia/Kolkata", "Australia/Adelaide", "Australia/Lord_Howe",
             "America/New_York", "Europe/Berlin", "America/St_Johns"]  # fmt: skip
CHANGES = ["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z", "2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z",
           "2026-04-04T15:00:00Z", "2026-10-03T15:30:00Z", "2026-03-08T05:30:00Z"]  # fmt: skip


@SETTINGS
@given(scenarios(), st.data())
def test_each_queue_s_today_begins_at_its_own_day_start_in_its_own_zone(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    from datetime import datetime

    import msgspec

    messages, now, zone = scenario
    anchor = datetime.fromisoformat(data.draw(st.sampled_from(CHANGES)).replace("Z", "+00:00"))
    shift = round(anchor.timestamp() * 1_000_000) + data.draw(st.integers(-26, 26)) * 3_600_000_000 - now
    messages = [(msgspec.structs.replace(event, at=event.at + shift), source) for event, source in messages]
    queues = {}
    for queue in ("q0", "q1"):
        entry = {}
        if data.draw(st.booleans()):
            entry["timezone"] = data.draw(st.sampled_from(DAY_ZONES))
        if data.draw(st.booleans()):
            entry["day_starts"] = data.draw(st.sampled_from(["00:00", "06:00", "02:30", "01:15", "23:45"]))
        queues[queue] = entry
    document = {"fcr_window_days": 1, "queues": queues,
                "day_starts": data.draw(st.sampled_from(["00:00", "02:30", "06:00"]))}  # fmt: skip
    targets = Targets.from_document(document)
    assert_equals_model(run(messages, targets), messages, now + shift, zone, targets)


# Business hours (issue 23): the scenarios' days are 2026-11-23 (a public holiday in Japan) to 26.
HOURS = [None, {"mon": "09:00-18:00", "tue": ["08:00-12:00", "13:00-17:30"], "wed": "00:00-24:00",
                "thu": "10:00-10:30"}, {"mon": "00:00-12:00", "sun": "09:00-17:00"}]  # fmt: skip


@SETTINGS
@given(scenarios(), st.data())
def test_contacts_offered_out_of_hours_are_counted_apart(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    messages, now, zone = scenario
    queues = {}
    for queue in ("q0", "q1"):
        entry: dict = {}  # type: ignore[type-arg]
        if data.draw(st.booleans()):
            entry["timezone"] = data.draw(st.sampled_from(["Asia/Tokyo", "Asia/Seoul", "Asia/Kolkata"]))
        hours = data.draw(st.sampled_from(HOURS))
        if hours is not None:
            entry["hours"] = hours
        if data.draw(st.booleans()):
            entry["holidays"] = data.draw(st.sampled_from(["JP", "KR", "US-CA"]))
        if data.draw(st.booleans()):
            entry["closed_dates"] = ["2026-11-25"]
        entry["out_of_hours"] = data.draw(st.sampled_from(["apart", "counted"]))
        for channel in ("email", "chat"):  # the promise in business hours, or in time that passes
            threshold = data.draw(st.sampled_from([60, 3600, 4 * 3600, 86400]))
            entry[channel] = {"sl_business_hours": data.draw(st.booleans()), "sl_threshold_seconds": threshold}
        queues[queue] = entry
    targets = Targets.from_document({"fcr_window_days": 1, "queues": queues}, zone=zone)
    assert_equals_model(run(messages, targets), messages, now, zone, targets)


def test_the_backlog_bands_and_the_promise_take_their_boundaries_as_documented() -> None:
    from pipeline.core.metrics import backlog, past_promise

    hour = 3600 * 1_000_000
    now = 100 * hour
    offered = [now, now - hour + 1, now - hour, now - 4 * hour, now - 24 * hour + 1, now - 24 * hour, now - 90 * hour]
    assert backlog(now, offered) == {"lt_1h": 2, "1h_4h": 1, "4h_24h": 2, "ge_24h": 2}
    assert past_promise(now, offered, 24 * hour) == 1  # waiting exactly the promise is not past it
