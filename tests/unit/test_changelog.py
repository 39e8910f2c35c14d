"""The stages' changelog records are those Faust's tables wrote before December 2026 (same key and
value bytes), so an upgraded worker restores the issues and board state Faust's tables left."""

from __future__ import annotations

import faust
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.changelog import changelog_key


@pytest.fixture(scope="module")
def tables():  # type: ignore[no-untyped-def]
    """Tables declared as the worker declared them (string keys: issues, reports; partition keys:
    fences, clock; raw values)."""
    app = faust.App("ccpulse-changelog-test", broker="kafka://localhost:9", store="memory://")
    return {name: app.Table(name, default=None, key_type=key_type, value_type=bytes)
            for name, key_type in (("issues", str), ("reports", str), ("fences", int), ("clock", int))}  # fmt: skip


@given(key=st.text())
def test_string_keys_are_serialized_as_faust_does(tables, key: str) -> None:  # type: ignore[no-untyped-def]
    for name in ("issues", "reports"):
        table = tables[name]
        faust_key, _ = table.changelog_topic.prepare_key(key, table.key_serializer)
        assert changelog_key(key) == faust_key


@given(key=st.integers(min_value=0, max_value=10_000))
def test_partition_keys_are_serialized_as_faust_does(tables, key: int) -> None:  # type: ignore[no-untyped-def]
    for name in ("fences", "clock"):
        table = tables[name]
        faust_key, _ = table.changelog_topic.prepare_key(key, table.key_serializer)
        assert changelog_key(key) == faust_key


def test_values_are_written_as_they_are(tables) -> None:  # type: ignore[no-untyped-def]
    for table in tables.values():
        assert table.changelog_topic.prepare_value(b"\x93\x00\xff", table.value_serializer)[0] == b"\x93\x00\xff"


def test_a_record_of_an_earlier_owner_after_a_later_one_s_is_late() -> None:
    from pipeline.changelog import EPOCH_HEADER, OwnerEpochs

    def headers(epoch: int | None) -> list[tuple[str, bytes]]:
        return [] if epoch is None else [("other", b"x"), (EPOCH_HEADER, str(epoch).encode())]

    epochs = OwnerEpochs()
    read = [(0, None), (0, 5), (0, 5), (1, 3), (0, 7), (0, 5), (1, 2), (0, None), (0, 7), (1, 3), (0, 8), (0, 7)]
    assert [epochs.late(partition, headers(epoch)) for partition, epoch in read] == [
        False, False, False, False, False, True, True, False, False, False, False, True,
    ]  # fmt: skip
