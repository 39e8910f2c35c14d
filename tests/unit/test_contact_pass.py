"""The one-pass contacts state of an input partition, killed anywhere and restored from its
changelog, against the engine that runs every event once (itself checked against the model)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.board import Board
from pipeline.core.contact_pass import PROGRESS_KEY, ContactPass
from pipeline.core.contract import Event
from pipeline.core.wire import Routed
from tests.unit.test_metrics_core import MODEL_TARGETS, SETTINGS, contents, run, scenarios

NO_EXPIRY_US = 10 * 365 * 86400 * 1_000_000  # the engine forgets nothing: neither does this pass


def restored(changelog: list[tuple[bytes, bytes | None]]) -> ContactPass:
    contact_pass = ContactPass(MODEL_TARGETS, NO_EXPIRY_US)
    for key, value in changelog:
        contact_pass.restore(key, value)
    return contact_pass


@SETTINGS
@given(scenarios(), st.data())
def test_a_pass_killed_anywhere_and_restored_from_its_changelog_counts_every_event_once(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    # Each batch writes its changelog records (progress first) and sends its reports; the input
    # offset is committed after some batches. A kill keeps a prefix of the last batch's records
    # and none of its reports; the next owner restores the whole changelog (state ahead of the
    # committed offset) and reads again from that offset. Board and counts end as one clean run's.
    messages, _, _ = scenario
    log = [(offset, Routed(source, event)) for offset, (event, source) in enumerate(messages)]
    changelog: list[tuple[bytes, bytes | None]] = []
    board = Board()
    contact_pass, committed, position = restored([]), 0, 0
    kills = data.draw(st.integers(0, 3), label="kills")
    while position < len(log):
        end = data.draw(st.integers(position + 1, len(log)), label="batch end")
        out = contact_pass.on_batch(log[position:end], wall=0.0)
        writes = list(out.writes.items())
        assert writes[0][0] == PROGRESS_KEY
        if kills and data.draw(st.booleans(), label="killed after this batch"):
            kills -= 1
            changelog += writes[: data.draw(st.integers(0, len(writes)), label="records that made it")]
            contact_pass, position = restored(changelog), committed
            continue
        changelog += writes
        for report in out.reports:
            board.apply(report)
        position = end
        if data.draw(st.booleans(), label="commit"):
            committed = position
    clean = run(messages, MODEL_TARGETS)
    not_issues = {key: r for key, r in contents(clean.board.reports).items() if not r.source.startswith("issue:")}
    assert contents(board.reports) == not_issues
    progress = contact_pass.progress
    assert (progress.duplicates, progress.conflicts) == (clean.health.duplicates, clean.health.conflicts)
    assert progress.offsets.next_offset == len(log)


def test_an_agent_offline_past_the_retention_is_forgotten_and_cleared_from_the_board() -> None:
    hour = 3600 * 1_000_000
    contact_pass = ContactPass(MODEL_TARGETS, retention_us=hour)
    away = Event("s1", "agent.state_changed", 10 * hour, agent_id="a1", state="offline", queues=("q0",))
    waiting = Event("o1", "contact.offered", 10 * hour, "c1", "voice", "q0", "cu", "r0")
    first = contact_pass.on_batch([(0, Routed("0:0", away)), (1, Routed("0:1", waiting))], wall=0.0)
    assert b"agent\x1fa1" in first.writes  # an expiry clock starts: the first run comes an event hour later
    later = Event("s3", "agent.state_changed", 15 * hour, agent_id="a2", state="available", queues=("q0",))
    out = contact_pass.on_batch([(2, Routed("0:2", later))], wall=0.0)
    assert out.writes.get(b"agent\x1fa1", b"kept") is None  # a tombstone
    assert [(r.source, r.queue, r.agent_state) for r in out.reports if r.source == "agent:a1"] == [
        ("agent:a1", "q0", None)
    ]
    assert b"contact\x1fc1" not in out.writes  # still waiting: kept (7 days)
    assert (contact_pass.contacts(), contact_pass.agents()) == (1, 1)


def test_records_of_the_faust_contacts_stage_go_to_the_partition_that_owns_them_now() -> None:
    import orjson

    from pipeline.core.contact_pass import legacy_owner
    from pipeline.core.intake import owner_partition

    assert legacy_owner(orjson.dumps("contact\x1fc7"), 8) == (b"contact\x1fc7", owner_partition(b"c7", 8))
    assert legacy_owner(orjson.dumps("agent\x1fa1"), 8) == (b"agent\x1fa1", owner_partition(b"a1", 8))
    assert legacy_owner(orjson.dumps("\x00progress\x1f3"), 8) is None  # the old stage's progress record
    assert legacy_owner(orjson.dumps(3), 8) is None and legacy_owner(None, 8) is None
