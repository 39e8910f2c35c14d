"""The one-pass contacts state of an input partition, killed anywhere and restored from its
changelog, against the engine that runs every event once (itself checked against the model)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from pipeline.changelog import EPOCH_HEADER, LateKeys, OwnerEpochs
from pipeline.core.agent_view import agent_list, queue_time
from pipeline.core.board import Board
from pipeline.core.contact_pass import PROGRESS_KEY, ContactPass, PassOutput, agent_state_rows, history_of
from pipeline.core.contract import Event
from pipeline.core.issue_pass import IssueOutput
from pipeline.core.wire import Routed
from tests.unit.test_metrics_core import MODEL_TARGETS, SETTINGS, run, scenarios

NO_EXPIRY_US = 10 * 365 * 86400 * 1_000_000  # the engine forgets nothing: neither does this pass
Changelog = list[tuple[bytes, bytes | None, int]]  # key, value, the epoch of the owner that wrote it


def shown(board: Board) -> dict[str, Any]:
    """What the board's gauges are made of: minute sums, waiting contacts, agents by state."""
    return {
        "minutes": {(queue, channel, minute): counts.as_tuple()
                    for (queue, channel), line in board.lines.items() for minute, counts in line.minutes.items()},
        "waiting": {key: sorted(at for each in line.waiting.values() for at in each)
                    for key, line in board.lines.items() if line.waiting},
        "agents": sorted(board.agents_by_state()),
    }  # fmt: skip


def agents_shown(board: Board, now_us: int) -> tuple[list[Any], list[Any]]:
    """Time in state per queue and window, and the agent list, at ``now_us``."""
    day = MODEL_TARGETS.agent_day(ZoneInfo("UTC"))
    return list(queue_time(board, now_us, lambda _: day)), agent_list(board, now_us, day)


def send(board: Board, out: PassOutput | IssueOutput | tuple[list[Any], ...]) -> None:
    if isinstance(out, tuple):
        partials = [partial for each in out for partial in each]
    else:
        partials = [*out.minutes, *out.live, *getattr(out, "agents", [])]
    for partial in partials:
        board.apply_partial(partial)


def compacted(changelog: Changelog, before: int) -> Changelog:
    """The changelog as log compaction may leave it: of the records before ``before``, the latest
    per key (the rest untouched)."""
    latest = {key: index for index, (key, _, _) in enumerate(changelog[:before])}
    kept = [record for index, record in enumerate(changelog[:before]) if latest[record[0]] == index]
    return kept + changelog[before:]


def restored(changelog: Changelog, board: Board | None = None, now_us: int = 1, log_end: int = 0,
             compact_before: int = 0) -> ContactPass:  # fmt: skip
    """The pass taken over from ``changelog`` (compacted before ``compact_before``) when the input
    partition ends at ``log_end``, as the stage restores it (records an earlier owner sent after a
    later one took over skipped, their keys written again); its fence and first partials sent to
    ``board``."""
    contact_pass, epochs, late = ContactPass(MODEL_TARGETS, NO_EXPIRY_US), OwnerEpochs(), LateKeys()
    for key, value, epoch in compacted(changelog, compact_before):
        if epochs.late(0, [(EPOCH_HEADER, str(epoch).encode())]):
            late(TopicPartition("changelog", 0), key)
        else:
            contact_pass.restore(key, value)
    late.write_again({0: contact_pass}, "contacts pass")
    taken = contact_pass.take_over(now_us, log_end)
    changelog += [(key, value, taken.fence.epoch) for key, value in taken.writes.items()]  # acknowledged first
    if board is not None:
        board.fence(taken.fence)
        send(board, (taken.minutes, taken.live, taken.agents))
    return contact_pass


@SETTINGS
@given(scenarios(), st.data())
def test_a_pass_killed_anywhere_and_restored_from_its_changelog_counts_every_event_once(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    # Each batch writes its changelog records (progress first) and sends its partials; the input
    # offset is committed after some batches. A kill keeps a prefix of the last batch's records
    # and any of its partials; the next owner restores the whole changelog (state ahead of the
    # committed offset), fences off the earlier owners' partials, sends every partial once
    # (version 0) and reads again from that offset; the old owner may go on for a batch (a
    # zombie: a worker frozen past its group session), and its client may send some of that
    # batch's changelog records after the new owner's take-over record. Compaction may have
    # cleaned the changelog up to the last take-over's records. The new owner's clock may be
    # behind the old one's: its epoch comes after all the same. Board and counts end as one clean
    # run's.
    messages, _, _ = scenario
    log = [(offset, Routed(source, event)) for offset, (event, source) in enumerate(messages)]
    changelog: Changelog = []
    board, contributions, agent_minutes = Board(), {}, {}  # type: ignore[var-annotated]
    contact_pass, committed, position = restored(changelog, board, log_end=len(log)), 0, 0
    taken_over_at = len(changelog)  # compaction may clean up to here
    held_back: Changelog = []  # a frozen owner's records, sent when it runs again
    kills = data.draw(st.integers(0, 3), label="kills")
    while position < len(log):
        if held_back and data.draw(st.booleans(), label="the frozen owner runs again"):
            changelog += held_back
            held_back = []
        end = data.draw(st.integers(position + 1, len(log)), label="batch end")
        out = contact_pass.on_batch(log[position:end], wall=0.0)
        writes = list(out.writes.items())
        assert writes[0][0] == PROGRESS_KEY
        if kills and data.draw(st.booleans(), label="killed after this batch"):
            kills -= 1
            made_it = writes[: data.draw(st.integers(0, len(writes)), label="records that made it")]
            changelog += [(key, value, contact_pass.epoch) for key, value in made_it]
            rows = out.contribution_rows
            latest_rows(contributions, rows[: data.draw(st.integers(0, len(rows)), label="rows written")], 4)
            agent_rows = out.agent_rows
            latest_rows(agent_minutes, agent_rows[: data.draw(st.integers(0, len(agent_rows)), label="agent rows")], 3)
            sent = data.draw(st.integers(0, len(out.minutes)), label="partials that made it")
            send(board, (out.minutes[:sent], out.live[: data.draw(st.integers(0, len(out.live)))],
                         out.agents[: data.draw(st.integers(0, len(out.agents)), label="agent partials")]))  # fmt: skip
            zombie = contact_pass
            # the clock may go back at a take-over: the epoch still moves on
            clean_up_to = taken_over_at if data.draw(st.booleans(), label="compacted") else 0
            clock = data.draw(st.integers(0, 2), label="clock")
            contact_pass = restored(changelog, board, clock, len(log), clean_up_to)
            taken_over_at = len(changelog)
            if end < len(log) and data.draw(st.booleans(), label="the old owner goes on (a zombie)"):
                late_out = zombie.on_batch(log[end : data.draw(st.integers(end + 1, len(log)))], wall=0.0)
                send(board, late_out)
                late_writes = list(late_out.writes.items())
                late_writes = late_writes[: data.draw(st.integers(0, len(late_writes)), label="its late records")]
                held_back = [(key, value, zombie.epoch) for key, value in late_writes]
            position = committed
            continue
        changelog += [(key, value, contact_pass.epoch) for key, value in writes]
        send(board, out)
        latest_rows(contributions, out.contribution_rows, 4)
        latest_rows(agent_minutes, out.agent_rows, 3)
        position = end
        if data.draw(st.booleans(), label="commit"):
            committed = position
    # the frozen owner's last records arrive, then a restart: the changelog must say what was counted
    changelog += held_back
    clean_up_to = taken_over_at if data.draw(st.booleans(), label="compacted at the end") else 0
    contact_pass = restored(changelog, board, now_us=3, log_end=len(log), compact_before=clean_up_to)
    out = contact_pass.on_batch(log[committed:], wall=0.0)
    send(board, out)
    latest_rows(contributions, out.contribution_rows, 4)
    latest_rows(agent_minutes, out.agent_rows, 3)
    clean = run(messages, MODEL_TARGETS)
    contacts_and_agents = Board()
    contacts_and_agents.load(r for r in clean.board.reports.values() if not r.source.startswith("issue:"))
    assert shown(board) == shown(contacts_and_agents)
    clean_pass, clean_board = ContactPass(MODEL_TARGETS, NO_EXPIRY_US), Board()
    send(clean_board, clean_pass.on_batch(log, wall=0.0))
    # time in state, the agent list, at a now no event is after (as the event clock's, or the wall's)
    now = max(scenario[1], max((event.at for event, _ in messages), default=0))
    assert agents_shown(board, now) == agents_shown(clean_board, now)
    written = {key: row[3:8] for key, (_, row) in agent_minutes.items() if not row[-1]}
    assert written == agent_table(clean_pass)  # agent_states: a lost batch's rows do not stay
    kept = {(q, c, m // 60, source): row[4:-2] for (q, c, m, source), (_, row) in contributions.items() if not row[-1]}
    expected = {(r.queue, channel, minute, r.source): values
                for r in clean.board.reports.values() if r.source.startswith("contact:")
                for channel, minute, values in r.minutes}  # fmt: skip
    assert kept == expected  # the contacts' contributions rows: a lost batch's rows do not stay
    progress = contact_pass.progress
    assert (progress.duplicates, progress.conflicts) == (clean.health.duplicates, clean.health.conflicts)
    assert progress.offsets.next_offset == len(log)


def agent_table(contact_pass: ContactPass) -> dict[tuple[object, ...], tuple[object, ...]]:
    """What ``agent_states`` should hold: every stint of every agent, ended by its successor."""
    table: dict[tuple[object, ...], tuple[object, ...]] = {}
    for key, agent in contact_pass.agent_records.items():
        history = history_of(agent)
        for row in agent_state_rows(key.split("\x1f", 1)[1], history, [(-(2**62), 2**62)], 0):
            table[row[:3]] = row[3:8]
    return table


def latest_rows(table: dict[tuple[object, ...], tuple[int, tuple[object, ...]]], rows: list[tuple[object, ...]],
                key_width: int) -> None:  # fmt: skip
    """A ReplacingMergeTree: per key, the row of greatest version (ties: the later)."""
    for row in rows:
        key, version = row[:key_width], row[-2]
        if key not in table or table[key][0] <= version:  # type: ignore[operator]
            table[key] = (version, row)  # type: ignore[assignment]


def test_an_agent_offline_past_the_retention_is_forgotten() -> None:
    hour = 3600 * 1_000_000
    contact_pass = ContactPass(MODEL_TARGETS, retention_us=hour)
    away = Event("s1", "agent.state_changed", 10 * hour, agent_id="a1", state="offline", queues=("q0",))
    waiting = Event("o1", "contact.offered", 10 * hour, "c1", "voice", "q0", "cu", "r0")
    first = contact_pass.on_batch([(0, Routed("0:0", away)), (1, Routed("0:1", waiting))], wall=0.0)
    assert b"agent\x1fa1" in first.writes  # an expiry clock starts: the first run comes an event hour later
    later = Event("s3", "agent.state_changed", 15 * hour, agent_id="a2", state="available", queues=("q0",))
    out = contact_pass.on_batch([(2, Routed("0:2", later))], wall=0.0)
    assert out.writes.get(b"agent\x1fa1", b"kept") is None  # a tombstone
    assert [(p.queue, p.agents) for p in out.live] == [("q0", (("available", 1),))]
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


def test_a_zombie_owner_cannot_put_back_what_the_new_owner_never_touches() -> None:
    # The old owner lost its changelog records, then took one more batch after the new owner's
    # fence: the contact in q1 there. The new owner read both offers in one batch: the earlier
    # offer (q0) wins, so it never touches q1. Without the fence the zombie's q1 stays for good.
    minute = 60 * 1_000_000
    later = Event("o-late", "contact.offered", 100 * minute, "c1", "voice", "q1", "cu", "r0")
    earlier = Event("o-early", "contact.offered", 90 * minute, "c1", "voice", "q0", "cu", "r0")
    log = [(0, Routed("0:0", later)), (1, Routed("0:1", earlier))]
    board = Board()
    changelog: list[tuple[bytes, bytes | None]] = []
    zombie = restored(changelog, board, now_us=5)
    taken = restored(changelog, board, now_us=2)  # a clock behind the zombie's
    send(board, zombie.on_batch(log[:1], wall=0.0))  # after the fence: ignored
    send(board, taken.on_batch(log, wall=0.0))
    assert shown(board)["waiting"] == {("q0", "voice"): [90 * minute]}
    assert [key[0] for key in shown(board)["minutes"]] == ["q0"]


def test_a_stint_row_of_a_lost_batch_is_replaced_by_the_replay_that_ends_it_earlier() -> None:
    # The first owner took s1 and s3 (available from 00:00 to 00:10), wrote s1's row and lost its
    # changelog records. Its successor reads s1, s3 and s2 (away from 00:05): s1 now ends at 00:05.
    minute = 60 * 1_000_000
    s1 = Event("s1", "agent.state_changed", 0, agent_id="a0", state="available", queues=("q0",))
    s3 = Event("s3", "agent.state_changed", 10 * minute, agent_id="a0", state="offline", queues=())
    s2 = Event("s2", "agent.state_changed", 5 * minute, agent_id="a0", state="away", queues=("q1",), reason="lunch")
    log = [(0, Routed("0:0", s1)), (1, Routed("0:1", s3)), (2, Routed("0:2", s2))]
    table: dict[tuple[object, ...], tuple[int, tuple[object, ...]]] = {}
    changelog: list[tuple[bytes, bytes | None]] = []
    latest_rows(table, restored(changelog, log_end=2).on_batch(log[:2], wall=0.0).agent_rows, 3)
    latest_rows(table, restored(changelog, log_end=3).on_batch(log[:1], wall=0.0).agent_rows, 3)
    latest_rows(table, restored(changelog, log_end=3).on_batch(log, wall=0.0).agent_rows, 3)
    clean = ContactPass(MODEL_TARGETS, NO_EXPIRY_US)
    clean.on_batch(log, wall=0.0)
    assert {key: row[3:8] for key, (_, row) in table.items()} == agent_table(clean)
    assert agent_table(clean)[("a0", 0, "s1")] == ("available", ["q0"], None, 5 * minute, 5 * minute)


def test_only_an_owner_after_another_remembers_the_states_it_reads_again() -> None:
    # The first owner of a partition (its changelog empty: no progress record, no contact) reads a
    # backlog without remembering every state; the owner after it (the first one's progress
    # record restored) remembers them up to the end the partition had when it took over.
    changelog: list[tuple[bytes, bytes | None]] = []
    first = restored(changelog, log_end=1000)
    assert first.replay_until == 0
    assert restored(changelog, log_end=1000).replay_until == 1000
