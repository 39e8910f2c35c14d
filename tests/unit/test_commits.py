"""The commit gate: never past a message whose work is not finished, whatever Faust delivers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.commits import MAX_MISSING, CommitGate

TP = ("ccpulse-events", 0)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int | None, int, list[int], list[int]]:
    """A log of ``size`` offsets from a committed ``start``; delivery in log order with some
    offsets held back (delivered later, or never); finishing in any order, of some offsets."""
    size = draw(st.integers(0, 60))
    start = draw(st.integers(0, 5))
    offsets = list(range(start, start + size))
    late = draw(st.sets(st.sampled_from(offsets))) if offsets else set()
    on_time = [o for o in offsets if o not in late]
    never = draw(st.sets(st.sampled_from(sorted(late)))) if late else set()
    again = draw(st.permutations(sorted(late - never)))
    delivered = on_time + list(again)
    finished = draw(st.lists(st.sampled_from(delivered), unique=True)) if delivered else []
    known_start = draw(st.booleans())
    return (start if known_start else None), start, delivered, finished


@given(deliveries(), st.integers(0, 100))
def test_commits_up_to_the_first_unfinished_offset(case: tuple, cut: int) -> None:
    known_start, start, delivered, finished = case
    gate = CommitGate()
    gate.assign(7, {TP: known_start})
    gate.received(7, TP, delivered)
    done = finished[:cut]
    gate.finished(7, TP, done)
    committed, given_up = gate.committable(TP)
    assert given_up == []
    if known_start is None and delivered and delivered[0] != start:
        start = delivered[0]  # no commit yet: the account starts at the first delivery
    if known_start is None and not delivered:
        assert committed is None
        return
    first_unfinished = start
    while first_unfinished in done:
        first_unfinished += 1
    assert committed == first_unfinished


@given(deliveries())
def test_work_of_an_earlier_generation_is_not_counted(case: tuple) -> None:
    known_start, start, delivered, finished = case
    gate = CommitGate()
    gate.assign(7, {TP: start})
    gate.received(6, TP, delivered)
    gate.finished(6, TP, finished)
    assert gate.committable(TP) == (start, [])


def test_a_hole_never_delivered_is_given_up_after_enough_later_offsets() -> None:
    gate = CommitGate()
    gate.assign(1, {TP: 0})
    later = range(2, 2 + MAX_MISSING)
    gate.received(1, TP, [0, *later])
    gate.finished(1, TP, [0, *later[:-1]])
    assert gate.committable(TP) == (1, [])  # offset 1 may still come
    gate.received(1, TP, [2 + MAX_MISSING])
    gate.finished(1, TP, [later[-1]])
    assert gate.committable(TP) == (2 + MAX_MISSING, [(1, 2)])


def test_a_late_delivery_fills_its_hole() -> None:
    gate = CommitGate()
    gate.assign(1, {TP: 10})
    gate.received(1, TP, [12, 13, 10, 11])
    gate.finished(1, TP, [12, 13, 10])
    assert gate.committable(TP) == (11, [])
    gate.finished(1, TP, [11])
    assert gate.committable(TP) == (14, [])


def test_a_revoked_or_unknown_partition_has_nothing_to_commit() -> None:
    gate = CommitGate()
    gate.assign(1, {TP: 3})
    assert gate.committable(("other", 0)) == (None, [])


@given(deliveries(), st.integers(0, 60), st.integers(0, 100))
def test_messages_delivered_before_the_seek_stay_in_the_account(case: tuple, early: int, cut: int) -> None:
    # Faust can hand a generation's first messages to the agents before it seeks the partition to
    # its committed offset; the account must start at the committed offset all the same.
    _, start, delivered, finished = case
    gate = CommitGate()
    gate.received(7, TP, delivered[:early])
    gate.finished(7, TP, [o for o in finished[:cut] if o in delivered[:early]])
    gate.assign(7, {TP: start})
    gate.received(7, TP, delivered[early:])
    done = set(finished[:cut])
    gate.finished(7, TP, [o for o in finished[:cut] if o not in delivered[:early]])
    committed, _ = gate.committable(TP)
    first_unfinished = start
    while first_unfinished in done:
        first_unfinished += 1
    assert committed == first_unfinished


def test_a_partition_whose_first_delivery_skips_the_committed_offset_is_read_again_once() -> None:
    gate = CommitGate()
    gate.assign(3, {TP: 793})
    assert gate.received(3, TP, [838, 839]) == 793  # Faust lost 793..837: read them again
    assert gate.received(3, TP, [840]) is None  # asked once
    gate.received(3, TP, range(793, 841))  # delivered again: the late ones fill the hole
    gate.finished(3, TP, range(793, 841))
    assert gate.committable(TP) == (841, [])


def test_messages_before_the_seek_that_skip_the_committed_offset_are_read_again() -> None:
    gate = CommitGate()
    gate.received(3, TP, [838])
    gate.assign(3, {TP: 793})
    assert gate.received(3, TP, [839]) == 793


def test_one_re_read_covers_the_hole_while_it_fills() -> None:
    gate = CommitGate()
    gate.assign(3, {TP: 0})
    assert gate.received(3, TP, [5]) == 0
    assert [gate.received(3, TP, [o]) for o in (0, 1, 2, 3, 4, 5, 6)] == [None] * 7
    assert gate.received(3, TP, [9]) == 7  # a new hole past the re-read: read again from it


def test_a_partition_with_messages_waiting_and_none_delivered_is_read_again() -> None:
    gate = CommitGate()
    gate.assign(1, {TP: 923, ("other", 0): 50}, now=100.0)
    gate.received(1, ("other", 0), [50, 51], now=105.0)
    ends = {TP: 1738, ("other", 0): 52}
    assert gate.starved(ends, now=109.0, quiet_seconds=10) == []
    assert gate.starved(ends, now=111.0, quiet_seconds=10) == [(TP, 923)]  # "other" has nothing waiting
    assert gate.starved(ends, now=115.0, quiet_seconds=10) == []  # asked again only after another quiet spell
    gate.received(1, TP, [923, 924], now=116.0)
    assert gate.starved(ends, now=125.0, quiet_seconds=10) == []
    assert gate.starved(ends, now=127.0, quiet_seconds=10) == [(TP, 925)]  # from the next undelivered offset


def test_a_hole_still_open_after_its_re_read_is_read_again_after_a_quiet_spell() -> None:
    gate = CommitGate()
    gate.assign(2, {TP: 38}, now=0.0)
    gate.received(2, TP, [38, 39], now=1.0)
    assert gate.received(2, TP, [47, 48], now=2.0) == 40  # a hole 40..46: read again
    gate.received(2, TP, range(49, 300), now=3.0)  # the re-read's messages never come
    ends = {TP: 300}
    assert gate.starved(ends, now=11.0, quiet_seconds=10) == []
    assert gate.starved(ends, now=12.0, quiet_seconds=10) == [(TP, 40)]  # asked again
    assert gate.starved(ends, now=13.0, quiet_seconds=10) == []  # and not before another quiet spell
    gate.received(2, TP, range(40, 300), now=14.0)  # this time they come: the hole is filled
    assert gate.starved(ends, now=30.0, quiet_seconds=10) == []
    gate.finished(2, TP, range(38, 300))
    assert gate.committable(TP) == (300, [])


def faust_delivers(read_offsets: dict, tp: object, offsets: Iterable[int]) -> list[int]:  # type: ignore[type-arg]
    """Faust's drop rule for each fetched message (faust/transport/consumer.py, _drain_messages)."""
    delivered = []
    for offset in offsets:
        floor = read_offsets[tp]
        if floor is None or offset >= floor:
            delivered.append(offset)
            read_offsets[tp] = offset
    return delivered


def test_the_rest_of_the_batch_in_hand_does_not_drop_the_re_read() -> None:
    from pipeline.consumer import ReadOffsets

    reads = ReadOffsets()
    assert faust_delivers(reads, TP, [38, 39, 47, 48]) == [38, 39, 47, 48]  # 40..46 lost: a hole
    reads.read_again(TP, 40)  # the seek; Faust still delivers the batch it has in hand
    assert faust_delivers(reads, TP, [49, 50]) == [49, 50]
    assert faust_delivers(reads, TP, range(40, 51)) == list(range(40, 51))  # the re-read comes through
    assert faust_delivers(reads, TP, [45, 51]) == [51]  # from there the floor works as before
    plain: dict = defaultdict(lambda: None)  # type: ignore[type-arg]  # Faust's own mapping: the re-read is dropped
    faust_delivers(plain, TP, [38, 39, 47, 48])
    plain[TP] = None
    assert faust_delivers(plain, TP, [49, 50, *range(40, 51)]) == [49, 50, 50]
