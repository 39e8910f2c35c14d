"""Bulk table writes produce the records Faust itself would write, so Faust's recovery reads them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.changelog import changelog_key
from pipeline.settings import Settings
from pipeline.topology import build


@pytest.fixture(scope="module")
def app():  # type: ignore[no-untyped-def]
    return build(Settings.from_env({"CCPULSE_KAFKA_BOOTSTRAP": "localhost:9"}, env_file=None))


@given(key=st.text())
def test_string_keys_are_serialized_as_faust_does(app, key: str) -> None:  # type: ignore[no-untyped-def]
    # the issues stage's changelog was a Faust table of string keys too: its records stay readable
    for name in ("reports",):
        table = app.tables[name]
        faust_key, _ = table.changelog_topic.prepare_key(key, table.key_serializer)
        assert changelog_key(key) == faust_key


@given(key=st.integers(min_value=0, max_value=10_000))
def test_partition_keys_are_serialized_as_faust_does(app, key: int) -> None:  # type: ignore[no-untyped-def]
    for name in ("clock",):
        table = app.tables[name]
        faust_key, _ = table.changelog_topic.prepare_key(key, table.key_serializer)
        assert changelog_key(key) == faust_key


def test_values_are_written_as_they_are(app) -> None:  # type: ignore[no-untyped-def]
    for table in app.tables.values():
        assert table.changelog_topic.prepare_value(b"\x93\x00\xff", table.value_serializer)[0] == b"\x93\x00\xff"


def test_a_batch_of_an_earlier_generation_writes_nothing(app) -> None:  # type: ignore[no-untyped-def]
    """A batch still in flight when its tables were recovered for a later generation must neither
    change them nor send changelog records: its messages come again in the new generation, and
    its late writes would land over the new generation's."""
    import asyncio

    from pipeline.changelog import ChangelogWrites

    contacts = app.tables["reports"]
    contacts.generation = 2
    contacts.data.data.clear()
    current = ChangelogWrites(app, generation=2)
    current.put(contacts, "contact\x1fc1", b"current")
    assert contacts.data.data == {"contact\x1fc1": b"current"} and not current.stale()

    late = ChangelogWrites(app, generation=1)
    late.put(contacts, "contact\x1fc1", b"late")
    late.delete(contacts, "contact\x1fc2")
    assert late.stale()
    assert contacts.data.data == {"contact\x1fc1": b"current"}
    asyncio.run(late.send())  # returns without a producer: nothing to send
    assert not late._records


def test_a_rebalance_empties_the_tables_and_reads_every_changelog_again(app) -> None:  # type: ignore[no-untyped-def]
    """Faust's in-memory store would re-read a kept partition over newer values key by key (some
    fell back, others did not: docs/operations.md). After ``on_rebalance`` the table is empty and
    Faust's recovery has no offset to resume from for its changelog: it reads from the start."""
    import asyncio

    from faust.types import TP

    contacts, agents = app.tables["reports"], app.tables["fences"]
    recovery = app.tables.recovery
    kept = TP(contacts.changelog_topic.get_topic_name(), 2)
    other = TP(agents.changelog_topic.get_topic_name(), 2)
    recovery.active_offsets[kept] = 181
    recovery.active_offsets[other] = 40
    contacts.data.data["contact\x1fc1"] = b"newer than the changelog"
    asyncio.run(contacts.on_rebalance({kept}, set(), set(), 5))
    assert contacts.generation == 5
    assert dict(contacts.data.data) == {}
    assert kept not in recovery.active_offsets
    assert recovery.active_offsets[other] == 40  # another table's changelog is its own
