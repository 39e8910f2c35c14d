"""The issues pass of an issue-updates partition, killed anywhere and restored from its changelog,
against the engine that runs every event once (itself checked against the model)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.changelog import changelog_key
from pipeline.core.board import Board
from pipeline.core.contact_pass import ContactPass
from pipeline.core.contract import Event
from pipeline.core.engine import IssueUpdate
from pipeline.core.issue_pass import IssuePass, issue_partition, progress_key
from pipeline.core.wire import Routed, issue_messages
from tests.unit.test_contact_pass import NO_EXPIRY_US, shown
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


def restored(partition: int, changelog: list[tuple[bytes, bytes | None]]) -> IssuePass:
    issue_pass = IssuePass(MODEL_TARGETS, NO_EXPIRY_US, partition=partition)
    for key, value in changelog:
        issue_pass.restore(key, value)
    return issue_pass


@SETTINGS
@given(scenarios(), st.data())
def test_an_issues_pass_killed_anywhere_and_restored_from_its_changelog_ends_as_one_clean_run(
    scenario: tuple[list[tuple[Event, str]], int, ZoneInfo], data: st.DataObject
) -> None:
    # Each batch writes its changelog records (progress first) and sends its reports; the offset
    # is committed after some batches. A kill keeps a prefix of the batch's records and, apart, a
    # prefix of its reports; the next owner restores the whole changelog (state ahead of the
    # committed offset) and reads again from that offset. The board's issue reports end as the
    # clean engine's. (Reports sent whose record was lost stayed on the board for good until a
    # replay cleared every state it passes through: IssueBatch.apply.)
    messages, _, _ = scenario
    board = Board()
    for partition, log in issue_logs(messages, data).items():
        changelog: list[tuple[bytes, bytes | None]] = []
        issue_pass, committed, position = restored(partition, changelog), 0, 0
        kills = data.draw(st.integers(0, 3), label="kills")
        while position < len(log):
            end = data.draw(st.integers(position + 1, len(log)), label="batch end")
            out = issue_pass.on_batch(log[position:end], wall=0.0)
            writes = [(changelog_key(key), value) for key, value in out.writes.items()]
            assert writes[0][0] == changelog_key(progress_key(partition))
            assert all(issue_partition(orjson.loads(key), PARTITIONS) == partition for key, _ in writes)
            if kills and data.draw(st.booleans(), label="killed after this batch"):
                kills -= 1
                changelog += writes[: data.draw(st.integers(0, len(writes)), label="records that made it")]
                for report in out.reports[: data.draw(st.integers(0, len(out.reports)), label="reports sent")]:
                    board.apply(report)
                issue_pass, position = restored(partition, changelog), committed
                continue
            changelog += writes
            for report in out.reports:
                board.apply(report)
            position = end
            if data.draw(st.booleans(), label="commit"):
                committed = position
        assert issue_pass.progress.offsets.next_offset == len(log)
    clean = run(messages, MODEL_TARGETS)
    issues_only = Board()
    issues_only.load(r for r in clean.board.reports.values() if r.source.startswith("issue:"))
    assert shown(board) == shown(issues_only)


def test_the_faust_tables_records_restore_as_they_are() -> None:
    # the Faust table kept the same records: a JSON key, a msgpack value, the progress as JSON
    issue_pass = IssuePass(MODEL_TARGETS, NO_EXPIRY_US, partition=1)
    issue_pass.restore(changelog_key(progress_key(1)), orjson.dumps({"next_offset": 7, "ahead": [9]}))
    issue_pass.restore(changelog_key("reason\x1fcu\x1fr0"), b"\x96\x80\x90\x00\x90\x00\x90")
    issue_pass.restore(changelog_key("reason\x1fcu\x1fr1"), b"\x96\x80\x90\x00\x90\x00\x90")
    issue_pass.restore(changelog_key("reason\x1fcu\x1fr1"), None)
    assert issue_pass.next_offset == 7 and issue_pass.keys() == 1
    assert IssuePass(MODEL_TARGETS, NO_EXPIRY_US).next_offset is None  # no record: read from the start
