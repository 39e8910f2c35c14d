"""The ingest stage's pure part: counts committed with the offset survive any crash exactly."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.contract import EVENT_TYPES, REASONS, check
from pipeline.core.intake import (
    COMMIT_METADATA_BYTES,
    REROUTED_HEADER,
    Intake,
    commit_metadata,
    owner_partition,
    progress_from_metadata,
    take,
)
from pipeline.core.privacy import Pseudonyms
from pipeline.core.progress import PartitionProgress


@dataclass
class Record:
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int = 1_700_000_000_000
    headers: tuple[tuple[str, bytes], ...] = ()


def passed_on(intake: Intake) -> set[str]:
    """The sources of the events handed to a contacts pass here or re-routed to another partition's."""
    local = {routed.source for events in intake.local.values() for _, routed in events}
    return local | {dict(reroute.headers)[REROUTED_HEADER].decode() for reroute in intake.reroutes}


def offered(number: int) -> bytes:
    return orjson.dumps({"event_id": f"e{number}", "type": "contact.offered", "schema_version": 1,
                         "occurred_at": f"2026-11-23T10:{number % 60:02d}:00Z", "contact_id": f"c{number}",
                         "channel": "voice", "queue": "billing", "customer_id": "k"})  # fmt: skip


MESSAGES = st.one_of(
    st.integers(0, 10_000).map(offered),
    st.sampled_from([b"{", b"[]", b'{"type":"nope"}', b"\xff\xfe", None]),
)


def brute_force(values: list[bytes | None]) -> tuple[dict[str, int], dict[str, int]]:
    """What the definitions say the counters hold after reading ``values`` once."""
    valid: dict[str, int] = {}
    invalid: dict[str, int] = {}
    for value in values:
        verdict = check(value or b"")
        if verdict.event is not None:
            valid[verdict.event.type] = valid.get(verdict.event.type, 0) + 1
        else:
            assert verdict.reason is not None
            invalid[verdict.reason] = invalid.get(verdict.reason, 0) + 1
    return valid, invalid


@given(values=st.lists(MESSAGES, min_size=1, max_size=40), data=st.data())
def test_counts_committed_with_the_offset_are_exact_after_any_crash(
    values: list[bytes | None], data: st.DataObject
) -> None:
    # The worker reads in batches, commits (offset, counts) after some of them, is killed at any
    # point, and the next owner starts from the last commit: every message counts exactly once,
    # and every valid one is forwarded at least once.
    log = [Record(offset, value) for offset, value in enumerate(values)]
    progress = PartitionProgress()
    committed: tuple[int | None, str | None] = (None, None)  # (offset, metadata) as Kafka keeps it
    forwarded: set[str] = set()
    position = 0
    for _ in range(data.draw(st.integers(0, 3), label="crashes")):
        crash_at = data.draw(st.integers(position, len(log)), label="crash at")
        while position < crash_at:
            end = data.draw(st.integers(position + 1, crash_at), label="batch end")
            intake = Intake()
            take(progress, "in", 0, log[position:end], Pseudonyms(None), 4, intake)
            forwarded |= passed_on(intake)
            position = end
            if data.draw(st.booleans(), label="commit"):
                committed = (progress.next_offset, commit_metadata(progress))
        progress = progress_from_metadata(committed[1], committed[0])  # the restart
        position = committed[0] or 0
    intake = Intake()
    take(progress, "in", 0, log[position:], Pseudonyms(None), 4, intake)
    forwarded |= passed_on(intake)

    valid, invalid = brute_force(values)
    assert dict(progress.events_by_type) == valid
    assert dict(progress.invalid_by_reason) == invalid
    assert forwarded == {f"0:{r.offset}" for r in log if check(r.value or b"").event is not None}
    assert progress.next_offset == len(log) and not intake.gaps


def test_an_event_keyed_by_its_contact_stays_and_one_keyed_otherwise_goes_to_its_owner_once() -> None:
    owner = owner_partition(b"c1", 4)
    here = (owner + 1) % 4
    intake, progress = Intake(), PartitionProgress()
    take(progress, "in", here, [Record(5, offered(1), key=b"c1"), Record(6, offered(1), key=b"queue")],
         Pseudonyms(None), 4, intake)  # fmt: skip
    assert [(offset, routed.source) for offset, routed in intake.local[here]] == [(5, f"{here}:5")]
    [reroute] = intake.reroutes
    assert (reroute.partition, reroute.key, reroute.value) == (owner, b"c1", offered(1))
    assert reroute.headers == [(REROUTED_HEADER, f"{here}:6".encode())]
    assert progress.events_by_type["contact.offered"] == 2 and progress.keyed_otherwise == 1
    assert len(intake.rows) == 2
    # the copy, read on its owner: applied there with the original's source, not counted or stored again
    copy, counted = Intake(), PartitionProgress()
    take(counted, "in", owner, [Record(9, reroute.value, reroute.key, headers=tuple(reroute.headers))],
         Pseudonyms("secret"), 4, copy)  # fmt: skip
    [(offset, routed)] = copy.local[owner]
    assert (offset, routed.source) == (9, f"{here}:6") and routed.event.customer_id != "k"  # pseudonymised
    assert not copy.rows and not copy.reroutes and not counted.events_by_type and counted.next_offset == 10


def test_the_owner_of_a_key_is_kafkas_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner  # an implementation of its own (aiokafka's)

    partitions = list(range(12))
    for key in (b"c1", b"contact-000123", "契約-42".encode(), b"x" * 300, b""):
        assert owner_partition(key, 12) == DefaultPartitioner()(key, partitions, partitions)


def test_dead_letters_keep_the_bytes_and_say_why() -> None:
    intake = Intake()
    take(PartitionProgress(), "in", 2, [Record(7, b"{", key=b"k")], Pseudonyms(None), 4, intake)
    [letter] = intake.dead_letters
    headers = dict(letter.headers)
    assert letter.value == b"{" and letter.key == b"k"
    assert headers["error.reason"] == b"invalid_json" and headers["source.partition"] == b"2"
    assert headers["source.offset"] == b"7" and headers["source.timestamp"] == b"1700000000000"


def test_an_offset_missing_from_the_log_is_reported_as_a_gap_and_not_counted() -> None:
    progress, intake = progress_from_metadata(None, 10), Intake()
    take(progress, "in", 1, [Record(10, offered(1)), Record(13, offered(2))], Pseudonyms(None), 4, intake)
    assert intake.gaps == [(1, 11, 12)]
    assert progress.events_by_type["contact.offered"] == 2 and progress.next_offset == 14


def test_the_largest_progress_fits_in_kafka_commit_metadata() -> None:
    # every event type and every invalid reason, with counts of a decade of a very large center
    progress = PartitionProgress(latest_at=2**62, keyed_otherwise=10**15)
    for name in EVENT_TYPES:
        progress.events_by_type[name] = 10**15
    for reason in REASONS:
        progress.invalid_by_reason[reason] = 10**15
    metadata = commit_metadata(progress)
    assert len(metadata.encode()) <= COMMIT_METADATA_BYTES
    restored = progress_from_metadata(metadata, 99)
    assert restored.events_by_type == progress.events_by_type and restored.next_offset == 99
    assert restored.keyed_otherwise == progress.keyed_otherwise


def test_nothing_committed_starts_afresh() -> None:
    assert progress_from_metadata(None, None) == PartitionProgress()
    assert progress_from_metadata("", -1) == PartitionProgress()


def test_a_record_read_again_is_forwarded_again_but_not_counted_again() -> None:
    progress = PartitionProgress()
    take(progress, "in", 0, [Record(0, offered(1)), Record(1, b"{")], Pseudonyms(None), 4, Intake())
    again = Intake()
    take(progress, "in", 0, [Record(0, offered(1)), Record(1, b"{")], Pseudonyms(None), 4, again)
    assert progress.events_by_type["contact.offered"] == 1 and progress.invalid_by_reason["invalid_json"] == 1
    assert passed_on(again) == {"0:0"} and len(again.dead_letters) == 1


def test_a_partition_far_ahead_in_event_time_is_paused_until_the_slowest_catches_up() -> None:
    from pipeline.core.intake import ALIGN_US, ahead

    latest = {0: 10 * ALIGN_US, 1: 12 * ALIGN_US, 2: 10 * ALIGN_US + 1, 3: 50 * ALIGN_US}
    assert ahead(latest, {0, 1, 2, 3}) == {1, 3}
    assert ahead(latest, {1, 2, 3}) == {1, 3}  # partition 0 has nothing waiting: it holds nobody back
    assert ahead(latest, {3}) == set()  # the only one with messages waiting is never held
    assert ahead(latest, {0, 2}) == set()


def test_events_keyed_otherwise_are_counted_once() -> None:
    """The key ``ccpulse produce`` gives (contact_id; agent events: agent_id) counts as keyed
    right; any other key, or none, counts as keyed otherwise, once, whatever is read again."""
    agent = orjson.dumps({"event_id": "a1", "type": "agent.state_changed", "schema_version": 1,
                          "occurred_at": "2026-11-23T10:00:00Z", "agent_id": "ag7", "state": "available",
                          "queues": ["billing"]})  # fmt: skip
    records = [
        Record(0, offered(1), key=b"c1"),  # right
        Record(1, offered(2), key=b"billing"),  # keyed by queue
        Record(2, offered(3)),  # no key
        Record(3, agent, key=b"ag7"),  # right
        Record(4, agent, key=b"c1"),  # wrong
        Record(5, b"{", key=b"whatever"),  # invalid: not counted here
    ]
    progress = PartitionProgress()
    take(progress, "t", 0, records, Pseudonyms(None), 4, Intake())
    assert progress.keyed_otherwise == 3
    take(progress, "t", 0, records, Pseudonyms(None), 4, Intake())  # read again: not counted again
    assert progress.keyed_otherwise == 3
    restored = progress_from_metadata(commit_metadata(progress), progress.next_offset)
    assert restored.keyed_otherwise == 3
