"""The simulator's promises, as named properties over whole simulated days."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache

import orjson
import pytest

from pipeline.core.contract import check
from pipeline.simulation import Faults, Simulation, inject

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def when(event: dict) -> datetime:  # type: ignore[type-arg]
    return datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))


@cache
def day(seed: int = 5, staffing: float = 1.0, days: float = 1.0) -> tuple[dict, ...]:  # type: ignore[type-arg]
    return tuple(Simulation(START, seed=seed, staffing=staffing).events(timedelta(days=days)))


def voice_service_level(events: tuple[dict, ...]) -> float:  # type: ignore[type-arg]
    offered, in_sl, answered, abandoned = {}, 0, 0, 0
    for event in events:
        if event["type"] == "contact.offered" and event["channel"] == "voice":
            offered[event["contact_id"]] = when(event)
        elif event["type"] == "contact.answered" and event["contact_id"] in offered:
            answered += 1
            in_sl += (when(event) - offered[event["contact_id"]]).total_seconds() <= 20
        elif event["type"] == "contact.abandoned" and event["contact_id"] in offered:
            abandoned += (when(event) - offered[event["contact_id"]]).total_seconds() >= 5
    return in_sl / (answered + abandoned)


def test_same_seed_same_events_other_seed_other_events() -> None:
    first = list(Simulation(START, seed=9).events(timedelta(hours=3)))
    assert first == list(Simulation(START, seed=9).events(timedelta(hours=3)))
    assert first != list(Simulation(START, seed=10).events(timedelta(hours=3)))


def test_every_event_is_valid_and_in_time_order() -> None:
    events = day()
    assert len(events) > 30_000
    assert all(check(orjson.dumps(event)).valid for event in events)
    times = [when(event) for event in events]
    assert times == sorted(times)
    assert set(Counter(e["type"] for e in events)) == {
        "contact.offered", "contact.answered", "contact.abandoned", "contact.ended", "survey.responded",
        "agent.state_changed", "contact.transferred",
    }  # fmt: skip


def test_each_contact_has_a_coherent_story() -> None:
    story: dict[str, list[str]] = defaultdict(list)
    for event in day():
        if "contact_id" in event:
            story[event["contact_id"]].append(event["type"])
    for contact, steps in story.items():
        assert steps[0] == "contact.offered", contact
        assert not ("contact.answered" in steps and "contact.abandoned" in steps), contact
        if "contact.ended" in steps:
            assert steps.index("contact.answered") < steps.index("contact.ended"), contact
        if "survey.responded" in steps:
            assert steps.index("contact.ended") < steps.index("survey.responded"), contact


def test_too_few_agents_make_service_level_and_abandonment_worse() -> None:
    staffed, short = day(staffing=1.0), day(staffing=0.6)
    assert voice_service_level(staffed) > 0.8
    assert voice_service_level(short) < voice_service_level(staffed) - 0.3
    abandoned = {name: sum(e["type"] == "contact.abandoned" for e in events)
                 for name, events in (("staffed", staffed), ("short", short))}  # fmt: skip
    assert abandoned["short"] > 3 * abandoned["staffed"] > 0


def test_short_abandons_happen() -> None:
    offered = {e["contact_id"]: when(e) for e in day() if e["type"] == "contact.offered"}
    waits = [(when(e) - offered[e["contact_id"]]).total_seconds() for e in day() if e["type"] == "contact.abandoned"]
    assert any(wait < 5 for wait in waits) and any(wait >= 5 for wait in waits)


def test_email_waits_hours_and_never_abandons() -> None:
    offered, waits = {}, []
    for event in day():
        if event["type"] == "contact.offered" and event["channel"] == "email":
            offered[event["contact_id"]] = when(event)
        elif event["type"] == "contact.answered" and event["contact_id"] in offered:
            waits.append((when(event) - offered[event["contact_id"]]).total_seconds())
        assert not (event["type"] == "contact.abandoned" and event["contact_id"] in offered)
    assert sum(waits) / len(waits) > 3600


def test_unresolved_customers_come_back_about_the_same_reason_within_days() -> None:
    events = day(days=3)
    seen: dict[tuple[str, str], datetime] = {}
    repeats = 0
    for event in events:
        if event["type"] == "contact.offered":
            key = (event["customer_id"], event["reason"])
            if key in seen and when(event) - seen[key] <= timedelta(days=7):
                repeats += 1
            seen[key] = when(event)
    offered = sum(e["type"] == "contact.offered" for e in events)
    assert 0.05 < repeats / offered < 0.5


def test_surveys_are_happier_when_resolved() -> None:
    resolved: dict[str, bool] = {}
    scores: dict[bool, list[int]] = {True: [], False: []}
    for event in day():
        if event["type"] == "contact.ended":
            resolved[event["contact_id"]] = event["resolved"]
        elif event["type"] == "survey.responded" and "csat" in event:
            scores[resolved[event["contact_id"]]].append(event["csat"])
    assert sum(scores[True]) / len(scores[True]) > sum(scores[False]) / len(scores[False]) + 0.5


def test_agents_change_state_through_their_shifts() -> None:
    states = Counter(e["state"] for e in day() if e["type"] == "agent.state_changed")
    assert {"available", "on_contact", "after_contact_work", "away", "offline"} <= set(states)


@pytest.mark.parametrize("seed", [1, 2])
def test_faults_add_duplicates_disorder_and_exactly_the_hostile_messages(seed: int) -> None:
    events = list(Simulation(START, seed=seed).events(timedelta(hours=10)))
    faults = Faults(duplicates=0.05, disorder=0.1, disorder_window=300, invalid_rate=0.01)
    delivered = list(inject(iter(events), faults, seed))
    hostile = [raw for event, raw in delivered if event is None]
    assert hostile and all(not check(raw).valid for raw in hostile)
    valid = [event for event, raw in delivered if event is not None]
    assert all(check(raw).valid for event, raw in delivered if event is not None)
    # every original event is delivered, some twice (same event_id, or re-emitted with a new one)
    ids = Counter(str(e["event_id"]) for e in valid)
    assert all(ids[str(e["event_id"])] >= 1 for e in events)
    assert any(count == 2 for count in ids.values())
    assert any("-retry" in event_id for event_id in ids)
    times = [when(e) for e in valid]
    assert times != sorted(times)  # arrival order is not event-time order
    assert max(a - b for a, b in zip(times, times[1:], strict=False)) <= timedelta(seconds=300)
