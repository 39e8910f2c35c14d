"""An agent kept in the changelog as a head and its hours (pipeline/core/agent_log.py): restored,
from the whole changelog or from any prefix of a batch's records, it is the agent the pass holds."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.agent_time import HOUR_US, Stint
from pipeline.core.contact_pass import ContactPass
from pipeline.core.contract import Event
from pipeline.core.engine import AgentRecord
from pipeline.core.expiry import ExpiryClock
from pipeline.core.wire import Routed
from tests.unit.test_metrics_core import MODEL_TARGETS, SETTINGS

RETENTION_US = 2 * HOUR_US
MINUTE_US = 60 * 1_000_000


def agent_events() -> st.SearchStrategy[list[Event]]:
    """State events of three agents over ten hours, in any order."""
    event = st.builds(
        lambda number, agent, minute, state, queues: Event(
            f"e{number}", "agent.state_changed", minute * MINUTE_US, agent_id=f"a{agent}", state=state,
            queues=queues, reason="lunch" if state == "away" else None),
        st.integers(0, 10**6), st.integers(0, 2), st.integers(0, 600),
        st.sampled_from(["available", "on_contact", "away", "offline"]),
        st.sampled_from([("q0",), ("q0", "q1"), ()]),
    )  # fmt: skip
    return st.lists(event, min_size=1, max_size=40, unique_by=lambda e: e.event_id)


def a_pass() -> ContactPass:
    """Expiry runs after every batch: trims and forgetting at every step."""
    clock = ExpiryClock(always_after_us=0)
    clock.due(0, 0.0)  # armed: the first batch runs expiry too
    return ContactPass(MODEL_TARGETS, RETENTION_US, _expiry=clock)


def restored(changelog: list[tuple[bytes, bytes | None]]) -> ContactPass:
    found = a_pass()
    for key, value in changelog:
        found.restore(key, value)
    found.agents()
    return found


def held(contact_pass: ContactPass) -> dict[str, tuple[object, ...]]:
    """Each agent's history, where it is kept from, and the fields its last stint gives."""
    return {key: (agent.history, agent.kept_from, agent.at, agent.event_id, agent.state, agent.queues)
            for key, agent in contact_pass.agent_records.items()}  # fmt: skip


@SETTINGS
@given(agent_events(), st.data())
def test_an_agent_restored_from_its_head_and_hours_is_the_agent_held(events: list[Event], data: st.DataObject) -> None:
    log = [(offset, Routed(f"0:{offset}", event)) for offset, event in enumerate(events)]
    live, changelog, position = a_pass(), [], 0
    while position < len(log):
        end = data.draw(st.integers(position + 1, len(log)), label="batch end")
        writes = list(live.on_batch(log[position:end], wall=0.0).writes.items())
        # any prefix of the batch's records, then the batch read again: the agents held
        prefix = restored(changelog + writes[: data.draw(st.integers(0, len(writes)), label="records kept")])
        assert all(s.at >= a.kept_from for a in prefix.agent_records.values() for s in a.history)  # as trimmed
        prefix.on_batch(log[position:end], wall=0.0)
        # (an agent the batch forgot may come back from the batch's own events older than the
        # retention, read again after its head's tombstone: forgetting is one record, as before)
        assert {key: found for key, found in held(prefix).items() if key in live.agent_records} == held(live)
        changelog += writes
        assert held(restored(changelog)) == held(live)  # the whole changelog: exactly the agents held
        position = end


def test_a_head_of_the_earlier_kind_is_read_whole_and_then_written_in_hours() -> None:
    history = [Stint(0, "s0", "available", ("q0",)), Stint(2 * HOUR_US, "s1", "away", ("q0",), "lunch")]
    legacy = AgentRecord(2 * HOUR_US, "s1", "away", ("q0",), ("q0",), history)
    contact_pass = restored([(b"agent\x1fa0", msgspec.msgpack.encode(legacy))])
    assert contact_pass.agent_records["agent\x1fa0"].history == history
    later = Event("s2", "agent.state_changed", 2 * HOUR_US + 1, agent_id="a0", state="available", queues=("q0",))
    writes = ContactPass(MODEL_TARGETS, 10 * RETENTION_US)
    writes.restore(b"agent\x1fa0", msgspec.msgpack.encode(legacy))
    out = writes.on_batch([(0, Routed("0:0", later))], wall=0.0)
    hours = [key for key in out.writes if key.startswith(b"stints")]
    assert hours == [b"stints\x1f0\x1fa0", b"stints\x1f7200000000\x1fa0"]
    again = restored(list(out.writes.items())).agent_records["agent\x1fa0"]
    assert again.history == [*history, Stint(2 * HOUR_US + 1, "s2", "available", ("q0",))]
    # the next event writes its own hour only
    last = Event("s3", "agent.state_changed", 3 * HOUR_US, agent_id="a0", state="away", queues=("q0",))
    out = writes.on_batch([(1, Routed("0:1", last))], wall=0.0)
    assert [key for key in out.writes if key.startswith(b"stints")] == [b"stints\x1f10800000000\x1fa0"]


def test_stints_share_their_states_reasons_and_queues_held_and_restored() -> None:
    """An agent holds every stint of the contact retention: each names its state, reason and queues
    through one object per distinct value, not the decoded copy each event brought."""

    def copy(text: str) -> str:
        return "".join(list(text))  # an equal string, another object (as each decoded event has)

    events = [Event(f"e{n}", "agent.state_changed", n * MINUTE_US, agent_id=f"a{n % 2}", state=copy("away"),
                    queues=(copy("q1"), copy("q0")), reason=copy("lunch")) for n in range(6)]  # fmt: skip
    live = a_pass()
    writes = live.on_batch([(n, Routed(f"0:{n}", event)) for n, event in enumerate(events)], wall=0.0).writes
    for contact_pass in (live, restored(list(writes.items()))):
        stints = [stint for agent in contact_pass.agent_records.values() for stint in agent.history]
        assert len(stints) == 6
        assert len({id(stint.state) for stint in stints}) == 1
        assert len({id(stint.reason) for stint in stints}) == 1
        assert len({id(stint.queues) for stint in stints}) == 1 and stints[0].queues == ("q0", "q1")
