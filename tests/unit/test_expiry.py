from pipeline.core.expiry import MINUTE_US, ExpiryClock

HOUR_US = 60 * MINUTE_US


def test_a_replay_runs_expiry_every_event_hour_however_fast_it_goes() -> None:
    clock = ExpiryClock()
    runs = [clock.due(minute * MINUTE_US, wall=minute * 0.001) for minute in range(0, 24 * 60)]
    assert sum(runs) == 23  # one an hour after the first event, whatever the batches
    assert all(not due for due in runs[:60])


def test_live_traffic_runs_about_once_a_minute_of_real_time() -> None:
    clock = ExpiryClock()
    runs = [clock.due(second * 1_000_000, wall=float(second)) for second in range(0, 3600)]
    # event time moves with real time: due every 5 minutes (event time moved enough, a minute passed)
    assert sum(runs) == 11


def test_no_run_while_event_time_stands_still() -> None:
    clock = ExpiryClock()
    assert not clock.due(HOUR_US, wall=0)
    assert not any(clock.due(HOUR_US, wall=float(s)) for s in range(1, 10_000, 100))
    assert clock.due(2 * HOUR_US, wall=10_001)


def test_a_run_cut_short_is_followed_by_a_larger_one_at_the_next_batch() -> None:
    clock = ExpiryClock(at_once=3, most=10)
    assert not clock.due(0, wall=0)
    assert clock.due(HOUR_US, wall=0)
    taken = []
    for expired in (3, 6, 10, 10, 4):  # each run as many as it may take, but the last
        taken.append(clock.at_once)
        clock.ran(expired)
        assert clock.due(HOUR_US + len(taken), wall=0) == (expired == taken[-1])
    assert taken == [3, 6, 10, 10, 10]
    assert clock.at_once == 3  # back to the least once a run found fewer


def test_contacts_past_the_retention_all_go_while_catching_up() -> None:
    """More contacts expire in an hour of event time than one run takes: the next batches take
    the rest, not one run an event hour (the heap of expired state grew while catching up)."""
    from pipeline.core.contact_pass import ContactPass
    from pipeline.core.contract import Event
    from pipeline.core.wire import Routed
    from tests.unit.test_metrics_core import MODEL_TARGETS

    contact_pass = ContactPass(MODEL_TARGETS, HOUR_US)
    contact_pass._expiry = ExpiryClock(at_once=3, most=6)
    early = [Event(f"o{n}", "contact.offered", n, f"c{n}", "voice", "q0", "cu0", "r0", None) for n in range(10)]
    early += [Event(f"a{n}", "contact.abandoned", 100 + n, f"c{n}") for n in range(10)]  # waiting for nothing
    offset = 0

    def batch(events: list[Event]) -> set[str]:
        nonlocal offset
        contact_pass.on_batch([(offset + n, Routed("0:0", event)) for n, event in enumerate(events)], wall=0.0)
        offset += len(events)
        return {key.split("\x1f", 1)[1] for key in contact_pass.contact_records}

    assert batch(early) == {f"c{n}" for n in range(10)}
    kept = [batch([Event(f"late{n}", "contact.offered", 3 * HOUR_US + n, f"late{n}", "voice", "q0", "cu0", "r0",
                         None)]) for n in range(4)]  # fmt: skip
    assert [len(each - {f"late{n}" for n in range(4)}) for each in kept] == [7, 1, 0, 0]  # 3, then 6


# ------------------------------------------------------------------ per-contact deadlines
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pipeline.core.expiry import WAITING_US, contact_expired, contact_kept_until  # noqa: E402
from pipeline.core.lifecycle import Abandoned, Answered, ContactState, Ended, Offered  # noqa: E402

DAY_US = 24 * HOUR_US
times = st.integers(min_value=0, max_value=20 * DAY_US)


@st.composite
def contact_states(draw: st.DrawFn) -> ContactState:
    offered = draw(st.none() | times.map(lambda at: Offered(at, "e1", "q", "voice", "c", "r", None)))
    answered = draw(st.none() | times.map(lambda at: Answered(at, "e2", "a")))
    abandoned = draw(st.none() | times.map(lambda at: Abandoned(at, "e3")))
    ended = draw(st.none() | times.map(lambda at: Ended(at, "e4", 0, True)))
    return ContactState(offered=offered, answered=answered, abandoned=abandoned, ended=ended, last_at=draw(times))


@given(contact_states(), times, st.integers(min_value=0, max_value=3 * DAY_US))
def test_a_contact_expires_exactly_when_the_latest_event_time_passes_its_deadline(
    state: ContactState, latest_us: int, retention_us: int
) -> None:
    assert contact_expired(state, latest_us, retention_us) == (latest_us > contact_kept_until(state, retention_us))


def test_a_waiting_contact_is_kept_seven_days_after_its_offer_and_no_longer() -> None:
    waiting = ContactState(offered=Offered(0, "e1", "q", "email", "c", "r", None), last_at=0)
    assert contact_kept_until(waiting, retention_us=26 * HOUR_US) == WAITING_US == 7 * DAY_US
    assert not contact_expired(waiting, 7 * DAY_US, 26 * HOUR_US)
    assert contact_expired(waiting, 7 * DAY_US + 1, 26 * HOUR_US)
    answered = ContactState(offered=waiting.offered, answered=Answered(5, "e2", "a"), last_at=5)
    assert contact_kept_until(answered, retention_us=26 * HOUR_US) == 5 + 26 * HOUR_US
