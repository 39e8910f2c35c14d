"""Kept JSON bytes occupy about their length (orjson's own results hold a 4 KiB buffer each)."""

from __future__ import annotations

import tracemalloc

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.changelog import changelog_key
from pipeline.core.json_bytes import json_bytes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_the_same_bytes_as_orjson(value: object) -> None:
    assert json_bytes(value) == orjson.dumps(value)


def traced_bytes_each(make: object, count: int = 5_000) -> float:
    assert callable(make)
    tracemalloc.start()
    try:
        kept = [make(i) for i in range(count)]
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return size / count


def test_a_kept_changelog_key_is_about_its_length() -> None:
    # a board key: queue, source, channel, minute (~40 bytes of text); 4,098 bytes each with
    # orjson.dumps itself on orjson 3.13
    each = traced_bytes_each(lambda i: changelog_key(f"sales\x1f\x00p3\x1fvoice\x1f{29_000_000 + i}"))
    assert each < 200, f"{each:.0f} bytes per kept key"


def test_a_kept_event_document_is_about_its_length() -> None:
    event = {"event_id": "e-1", "type": "contact.offered", "occurred_at": "2026-11-23T00:00:00Z",
             "contact_id": "c-1", "queue": "sales", "channel": "voice", "customer_id": "0" * 64}  # fmt: skip
    length = len(orjson.dumps(event))
    each = traced_bytes_each(lambda i: json_bytes({**event, "event_id": f"e-{i}"}))
    assert each < length + 200, f"{each:.0f} bytes per kept {length}-byte document"
