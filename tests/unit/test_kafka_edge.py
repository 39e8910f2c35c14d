"""The private parts of faust and aiokafka that pipeline/kafka_edge.py uses still exist (with the
signature it calls). The integration tests use both on every run, against the installed versions."""

from __future__ import annotations

import inspect

from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.transport.drivers.aiokafka import Producer


def test_the_private_names_used_are_there() -> None:
    assert callable(Producer._ensure_producer)
    assert inspect.iscoroutinefunction(GroupCoordinator.fetch_committed_offsets)
    assert list(inspect.signature(GroupCoordinator.fetch_committed_offsets).parameters) == ["self", "partitions"]
