"""The issues pass of an issue-updates partition, killed anywhere and restored from its changelog,
against the engine that runs every event once (itself checked against the model)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson
from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from pipeline.changelog import EPOCH_HEADER, LateKeys, OwnerEpochs, changelog_key
from pipeline.core.board import Board
from pipeline.core.contact_pass import ContactPass
from pipeline.core.contract import Event
from pipeline.core.engine import IssueUpdate
from pipeline.core.issue_pass import IssuePass, issue_partition, progress_key
from pipeline.core.wire import Routed, issue_messages
from tests.unit.test_contact_pass import NO_EXPIRY_US, Changelog, compacted, latest_rows, send, shown
from tests.unit.test_metrics_core import MODEL_TARGETS, SETTINGS, run, scenarios

PARTITIONS = 2


def issue_logs(messages: list[tuple[Event, str]], data: st.DataObject) -> dict[int, list[tuple[int, bytes]]]:
    """The issue-updates topic the contacts pass writes for ``messages`` cut into batches: per
    partition, (offset, block) as the ingest stage sends them (one block per partition per batch)."""
    contact_pass = ContactPass(MODEL_TARGETS, NO_EXPIRY_US)
    log = [(offset, Routed(source, event)) for offset, (event, source) in enumerate(messages)]
    topic: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    position = 0
    while position < len(log):
        end = data.draw(st.integers(position + 1, len(log)), label="ingest batch end")
        updates: list[IssueUpdate] = contact_pass.on_batch(log[position:end], wall=0.0).issue_updates
        for partition, block in issue_messages(updates, PARTITIONS):
            topic[partition].append((len(topic[partition]), block))
        position = end
    return topic


def restored(partition: int, changelog: Changelog, board: Board | None = None, now_us: int = 1, log_end: int = 0,
             compact_before: int = 0) -> IssuePass:  # fmt: skip
    """The pass taken over from ``changelog`` (compacted before ``compact_before``) when its log
    ends at ``log_end``, as the stage restores it (``tests.unit.test_contact_pass.restored``); its
    fence and first partials sent to ``board``."""
    issue_pass, epochs, late = IssuePass(MODEL_TARGETS, NO_EXPIRY_US, partition=partition), OwnerEpochs(), LateKeys()
    for key, value, epoch in compacted(changelog, compact_before):
        if epochs.late(partition, [(EPOCH_HEADER, str(epoch).encode())]):
            late(TopicPartition("changelog", partition), key)
        else:
            issue_pass.restore(key, value)
    late.write_again({partition: issue_pass}, "issues stage")
    taken = issue_pass.take_over(now_us, log_end)
    changelog += [(changelog_key(key), value, taken.fence.epoch) for key, value in taken.writes.items()]
    if board is not None:
        board.fence(taken.fence)
        send(board, (taken.minutes, taken.live))
    return issue_pass


@SETTINGS
@given(scenarios(), st.data())
def test_an_issues_pass_killed_anywhere_and_restored_from_its_changelog_ends_as_one_clean_run(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    # Each batch writes its changelog records (progress first), its contributions rows and sends
    # its partials; the offset is committed after some batches. A kill keeps a prefix of the
    # batch's records and, apart, any prefix of its partials and of its rows; the next owner
    # restores the whole changelog (state ahead of the committed offset), fences off the earlier
    # owners' partials, sends its sums once and reads again from that offset; the old owner may
    # go on for a batch (a zombie), its client sending some of that batch's records after the new
    # owner's take-over record; compaction may have cleaned the changelog up to the last
    # take-over's records. The board's issue counts, and the contributions rows of issue
    # keys, end as the clean engine's. (Rows written whose record was lost stayed in ClickHouse
    # until a replay deleted every minute any state it passes through had: IssueBatch.apply.)
    messages, _, _ = scenario
    board, contributions = Board(), {}
    clock = iter(range(1, 10_000))
    for partition, log in issue_logs(messages, data).items():
        changelog: Changelog = []
        issue_pass, committed, position = restored(partition, changelog, board, next(clock), len(log)), 0, 0
        taken_over_at = len(changelog)  # compaction may clean up to here
        held_back: Changelog = []  # a frozen owner's records, sent when it runs again
        kills = data.draw(st.integers(0, 3), label="kills")
        while position < len(log):
            if held_back and data.draw(st.booleans(), label="the frozen owner runs again"):
                changelog += held_back
                held_back = []
            end = data.draw(st.integers(position + 1, len(log)), label="batch end")
            out = issue_pass.on_batch(log[position:end], wall=0.0)
            writes = [(changelog_key(key), value) for key, value in out.writes.items()]
            assert writes[0][0] == changelog_key(progress_key(partition))
            assert all(issue_partition(orjson.loads(key), PARTITIONS) == partition for key, _ in writes)
            rows = out.rows["contributions"]
            if kills and data.draw(st.booleans(), label="killed after this batch"):
                kills -= 1
                made_it = writes[: data.draw(st.integers(0, len(writes)), label="records that made it")]
                changelog += [(key, value, issue_pass.epoch) for key, value in made_it]
                send(board, (out.minutes[: data.draw(st.integers(0, len(out.minutes)), label="partials sent")], []))
                latest_rows(contributions, rows[: data.draw(st.integers(0, len(rows)), label="rows written")], 4)
                zombie = issue_pass
                clean_up_to = taken_over_at if data.draw(st.booleans(), label="compacted") else 0
                issue_pass = restored(partition, changelog, board, next(clock), len(log), clean_up_to)
                position, taken_over_at = committed, len(changelog)
                if end < len(log) and data.draw(st.booleans(), label="the old owner goes on (a zombie)"):
                    late_out = zombie.on_batch(log[end : data.draw(st.integers(end + 1, len(log)))], wall=0.0)
                    send(board, late_out)
                    late_writes = [(changelog_key(key), value) for key, value in late_out.writes.items()]
                    late_writes = late_writes[: data.draw(st.integers(0, len(late_writes)), label="its late records")]
                    held_back = [(key, value, zombie.epoch) for key, value in late_writes]
                continue
            changelog += [(key, value, issue_pass.epoch) for key, value in writes]
            send(board, out)
            latest_rows(contributions, rows, 4)
            position = end
            if data.draw(st.booleans(), label="commit"):
                committed = position
        # the frozen owner's last records arrive, then a restart: the changelog must say what was counted
        changelog += held_back
        clean_up_to = taken_over_at if data.draw(st.booleans(), label="compacted at the end") else 0
        issue_pass = restored(partition, changelog, board, next(clock), len(log), clean_up_to)
        out = issue_pass.on_batch(log[committed:], wall=0.0)
        send(board, out)
        latest_rows(contributions, out.rows["contributions"], 4)
        assert issue_pass.progress.offsets.next_offset == len(log)
    clean = run(messages, MODEL_TARGETS)
    issues_only = Board()
    issues_only.load(r for r in clean.board.reports.values() if r.source.startswith("issue:"))
    assert shown(board) == shown(issues_only)
    kept = {(q, c, m // 60, source): row[4:-2] for (q, c, m, source), (_, row) in contributions.items() if not row[-1]}
    expected = {(r.queue, channel, minute, r.source): values
                for r in clean.board.reports.values() if r.source.startswith("issue:")
                for channel, minute, values in r.minutes}  # fmt: skip
    assert kept == expected


def test_the_faust_tables_records_restore_as_they_are() -> None:
    # the Faust table kept the same records: a JSON key, a msgpack value, the progress as JSON
    issue_pass = IssuePass(MODEL_TARGETS, NO_EXPIRY_US, partition=1)
    issue_pass.restore(changelog_key(progress_key(1)), orjson.dumps({"next_offset": 7, "ahead": [9]}))
    issue_pass.restore(changelog_key("reason\x1fcu\x1fr0"), b"\x96\x80\x90\x00\x90\x00\x90")
    issue_pass.restore(changelog_key("reason\x1fcu\x1fr1"), b"\x96\x80\x90\x00\x90\x00\x90")
    issue_pass.restore(changelog_key("reason\x1fcu\x1fr1"), None)
    assert issue_pass.next_offset == 7 and issue_pass.keys() == 1
    assert IssuePass(MODEL_TARGETS, NO_EXPIRY_US).next_offset is None  # no record: read from the start


def test_a_replay_deletes_the_rows_of_a_state_whose_record_a_crash_lost() -> None:
    # A batch judges an issue in minute 10 and writes its rows; the crash keeps the batch's progress
    # record (written first) but loses the key's record. The replay applies the same update again
    # (a replay by the progress record) and then a later one that moves the contact's end to
    # minute 5. The row of minute 10, written by the lost state, must be deleted: the restored
    # record never had it, so only a replay that remembers every state it passes through knows it.
    from pipeline.core.lifecycle import IssueContact
    from pipeline.core.wire import encode

    minute = 60 * 1_000_000
    key = "reason\x1fcu\x1fbilling"

    def block(ended_minute: int) -> bytes:
        contact = IssueContact(key, "c1", 0, "q", "voice", ended_minute * minute, True)
        return encode([IssueUpdate(key, "c1", contact)])

    changelog: Changelog = []
    first = restored(0, changelog)
    out = first.on_batch([(0, block(10))], wall=0.0)
    rows: dict[tuple[object, ...], tuple[int, tuple[object, ...]]] = {}
    latest_rows(rows, out.rows["contributions"], 4)
    progress_only = [(changelog_key(k), v, first.epoch) for k, v in out.writes.items()][:1]
    assert progress_only[0][0] == changelog_key(progress_key(0))
    replay = restored(0, changelog + progress_only)
    again = replay.on_batch([(0, block(10)), (1, block(5))], wall=0.0)
    latest_rows(rows, again.rows["contributions"], 4)
    live = sorted(m // 60 for (_, _, m, _), (_, row) in rows.items() if not row[-1])
    assert live == [5]


def test_rows_of_a_batch_whose_records_were_all_lost_are_deleted_by_the_next_owner() -> None:
    # A first batch (offset 0) is whole. The next (offset 1) judges an issue in minute 10 and
    # writes its rows; the crash loses all its records, the progress record too: the next owner
    # sees offset 1 as new. It reads it again with a later message that moves the contact's end to
    # minute 5, in one batch. The row of minute 10 must be deleted: messages up to the log's end at
    # the take-over are replays (found by the kill test above: the row stayed, until
    # IssuePass.take_over took the log's end).
    from pipeline.core.lifecycle import IssueContact
    from pipeline.core.wire import encode

    minute = 60 * 1_000_000
    key, other = "reason\x1fcu\x1fbilling", "reason\x1fcu2\x1fbilling"

    def block(ended_minute: int, which: str = key) -> bytes:
        contact = IssueContact(which, "c1" if which == key else "c2", 0, "q", "voice", ended_minute * minute, True)
        return encode([IssueUpdate(which, "c1" if which == key else "c2", contact)])

    changelog: Changelog = []
    rows: dict[tuple[object, ...], tuple[int, tuple[object, ...]]] = {}
    first = restored(0, changelog, log_end=0)
    whole = first.on_batch([(0, block(20, other))], wall=0.0)
    changelog += [(changelog_key(k), v, first.epoch) for k, v in whole.writes.items()]
    latest_rows(rows, whole.rows["contributions"], 4)
    lost = first.on_batch([(1, block(10))], wall=0.0)
    latest_rows(rows, lost.rows["contributions"], 4)  # written; then the crash: none of its records
    next_owner = restored(0, changelog, log_end=3)  # the log holds all three messages at the take-over
    again = next_owner.on_batch([(0, block(20, other)), (1, block(10)), (2, block(5))], wall=0.0)
    latest_rows(rows, again.rows["contributions"], 4)
    live = sorted((source, m // 60) for (_, _, m, source), (_, row) in rows.items() if not row[-1])
    assert live == [(f"issue:{key}", 5), (f"issue:{other}", 20)]


def test_an_earlier_owner_s_late_record_is_not_restored_and_the_key_is_written_again() -> None:
    # owner 1 wrote the key with one contact, owner 2 took over and added a second; owner 1, frozen
    # past its session, sent its record of the key (one contact) after owner 2's
    from pipeline.core.lifecycle import IssueContact
    from pipeline.core.wire import encode

    key = "reason\x1fcu\x1fbilling"

    def block(*contacts: str) -> bytes:
        return encode([IssueUpdate(key, c, IssueContact(key, c, n, "q", "voice", n + 10, True))
                       for n, c in enumerate(contacts)])  # fmt: skip

    changelog: Changelog = []
    first = restored(0, changelog)
    late = [(changelog_key(k), v, first.epoch) for k, v in first.on_batch([(0, block("c1"))], wall=0.0).writes.items()]
    second = restored(0, changelog)
    out = second.on_batch([(0, block("c1")), (1, block("c1", "c2"))], wall=0.0)
    changelog += [(changelog_key(k), v, second.epoch) for k, v in out.writes.items()] + late
    third = restored(0, changelog)
    assert third.groups == second.groups  # two contacts, as owner 2 left them
    assert (changelog_key(key), second.groups[key], third.epoch) in changelog  # written again, after owner 1's
    assert restored(0, compacted(changelog, len(changelog))).groups == second.groups
