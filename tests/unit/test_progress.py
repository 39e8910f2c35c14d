"""Per-partition progress: re-delivery of any prefix of the log is a no-op."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.progress import MAX_AHEAD, Offsets, PartitionProgress, total

TYPES = st.sampled_from(["contact.offered", "contact.answered", "survey.responded"])


def apply(progress: PartitionProgress, log: list[str], offsets: list[int]) -> None:
    for offset in offsets:
        if progress.is_new(offset):
            progress.events_by_type[log[offset]] += 1
            progress.applied(offset)


@given(log=st.lists(TYPES, min_size=1, max_size=60), data=st.data())
def test_replaying_after_a_crash_never_double_counts(log: list[str], data: st.DataObject) -> None:
    # A worker applies a prefix, its state is persisted (a JSON round trip, as in the
    # changelog), it dies, and the log is delivered again from an older committed offset.
    applied_before_crash = data.draw(st.integers(0, len(log)))
    committed = data.draw(st.integers(0, applied_before_crash))
    before = PartitionProgress()
    apply(before, log, list(range(applied_before_crash)))
    restored = PartitionProgress.from_json(before.to_json())
    apply(restored, log, list(range(committed, len(log))))
    assert dict(restored.events_by_type) == {t: log.count(t) for t in set(log)}
    assert restored.next_offset == len(log)


def test_total_sums_partitions() -> None:
    a, b = PartitionProgress(), PartitionProgress()
    a.events_by_type["contact.offered"] = 2
    b.events_by_type["contact.offered"] = 3
    b.invalid_by_reason["schema"] = 1
    summed = total([a, b])
    assert summed.events_by_type["contact.offered"] == 5 and summed.invalid_by_reason["schema"] == 1


@given(log=st.lists(TYPES, min_size=2, max_size=60), data=st.data())
def test_a_message_skipped_and_delivered_later_still_counts_once(log: list[str], data: st.DataObject) -> None:
    # Faust drops messages that reach a paused stream and delivers them again after seeking back:
    #   delivered:  0 1 2 . . 5 6 7 ... | crash? | (from the commit) 0 1 2 3 4 5 ...
    #   the hole 3..4 is filled late; nothing counts twice, nothing is lost.
    start = data.draw(st.integers(0, len(log) - 1))
    end = data.draw(st.integers(start + 1, len(log)))
    first_pass = [o for o in range(len(log)) if not start <= o < end]
    progress = PartitionProgress()
    apply(progress, log, first_pass)
    if data.draw(st.booleans()):  # persisted and restored in between
        progress = PartitionProgress.from_json(progress.to_json())
    apply(progress, log, list(range(len(log))))
    assert dict(progress.events_by_type) == {t: log.count(t) for t in set(log)}
    assert progress.next_offset == len(log) and not progress.offsets.ahead


def test_a_hole_that_never_fills_is_given_up_and_reported() -> None:
    offsets = Offsets()
    given_up: list[int] = []
    for offset in range(1, MAX_AHEAD + 5):  # offset 0 never comes (a transaction marker, say)
        given_up += offsets.applied(offset)
    assert given_up == [0]
    assert offsets.next_offset == MAX_AHEAD + 5 and not offsets.ahead
    assert not offsets.is_new(0) and offsets.is_new(MAX_AHEAD + 5)
