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
    for name in ("contacts", "agents", "issues", "reports"):
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
