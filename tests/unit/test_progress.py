"""Per-partition progress: re-delivery of any prefix of the log is a no-op."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.progress import PartitionProgress, total

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
